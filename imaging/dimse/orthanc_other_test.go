//go:build !linux

package dimse

import "os/exec"

func dieWithTest(*exec.Cmd) {}
