// Package docs holds Concord's guides, one per role, and the test that keeps
// them true: every fenced block marked `sh` in a guide is a command the
// reader types, and guides_test.go runs each guide's blocks, in order, as
// one bash script on this machine (127.0.0.1), against the real binaries.
// A block marked `sh norun` is shown and not run (a command that needs a
// systemd host or a GPU, for example). What a reader already has when a
// guide starts (the kit an admin sent, a running consortium) is made by
// testdata/setup-GUIDE.sh, which the reader never sees.
//
// The troubleshooting page quotes error messages; the test checks that
// each one still occurs in the source, so the page cannot describe an error
// Concord no longer gives.
package docs
