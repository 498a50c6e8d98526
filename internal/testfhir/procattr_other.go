//go:build !linux

package testfhir

import "os/exec"

// dieWithParent has no portable equivalent off Linux; cleanups stop the server.
func dieWithParent(*exec.Cmd) {}
