// Package installtest tests the air-gapped release archive of `make dist`
// and deploy/install/install.sh in a temporary root: install, upgrade and
// rollback with the state folder left alone, refusal of a damaged archive,
// and an agent's state written by the previous release read by this one.
//
// It has no code of its own besides helpers: the archive is built with the
// real Makefile target and installed with the real script, with
// --no-activate so that no systemd is needed.
package installtest
