package dimse

import (
	"os/exec"
	"syscall"
)

// dieWithTest kills Orthanc if the test binary dies before TestMain stops it.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
