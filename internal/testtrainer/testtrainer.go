// Package testtrainer runs the reference PyTorch trainer
// (deploy/trainer/trainer.py) on the CPU for tests, on a free loopback
// port unless told otherwise.
package testtrainer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
)

// Modules are the Python modules trainer.py imports.
var Modules = []string{"torch", "grpc", "numpy", "google.protobuf"}

// Launch starts "trainer.py serve --device cpu" with python py, extra
// arguments and its stderr into stderr, and waits (at most 60 s) for the
// line that reports its address. The process is returned even on an error,
// for Stop.
func Launch(py string, stderr io.Writer, args ...string) (*exec.Cmd, string, error) {
	script := filepath.Join(testenv.RepoRoot(), "deploy", "trainer", "trainer.py")
	cmd := exec.Command(py, append([]string{script, "serve", "--device", "cpu", "--grace", "2"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout) // the trainer's later lines must not block it
	}()
	select {
	case l, ok := <-line:
		var hello struct{ Listening string }
		if !ok || json.Unmarshal([]byte(l), &hello) != nil || hello.Listening == "" {
			return cmd, "", fmt.Errorf("trainer did not start (first line %q)", l)
		}
		return cmd, hello.Listening, nil
	case <-time.After(60 * time.Second):
		return cmd, "", fmt.Errorf("trainer did not report its address within 60 s")
	}
}

// Stop ends a trainer process: SIGTERM, then a kill after 10 s.
func Stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Start runs a trainer with threads CPU threads and its shard cache in
// cacheDir until the test ends, and returns its address; its stderr is
// logged when the test fails.
func Start(t testing.TB, cacheDir string, threads int) string {
	t.Helper()
	py := testenv.Python(t, Modules...)
	var stderr testenv.Buffer
	cmd, addr, err := Launch(py, &stderr, "--threads", strconv.Itoa(threads), "--listen", "127.0.0.1:0", "--shard-cache", cacheDir)
	t.Cleanup(func() {
		Stop(cmd)
		if t.Failed() {
			t.Logf("trainer stderr:\n%s", stderr.String())
		}
	})
	if err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	return addr
}
