// Package testrepo gives the tools module's tests the Concord checkout they
// package: its root, and its static binaries built the way `make build`
// builds them.
package testrepo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is the main module's path.
const Module = "github.com/concord-fl/concord"

// Root is the folder of the main module's go.mod, found from the working
// directory upwards (tests run in their package folder inside tools/).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module "+Module+"\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of %s above the working directory", Module)
		}
		dir = parent
	}
}

// Build builds the named commands (coordinator, site-agent, ...) as static
// binaries stamped with version into dir, with the flags of `make build`.
func Build(t testing.TB, dir, version string, names ...string) {
	t.Helper()
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -X " + Module + "/internal/version.Stamp=" + version, "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = Root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", names, err, out)
	}
}

// ErrNoHistory is returned by BuildAt when the checkout lacks the commit.
var ErrNoHistory = errors.New("commit not in this checkout's history")

// BuildAt builds the named commands as they were at commit (from git
// history, into a temporary source tree) into dir, stamped with version.
func BuildAt(t testing.TB, commit, dir, version string, names ...string) error {
	t.Helper()
	root := Root(t)
	if err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		return fmt.Errorf("%s: %w", commit, ErrNoHistory)
	}
	src := t.TempDir()
	archive := exec.Command("bash", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "archive", root, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -X " + Module + "/internal/version.Stamp=" + version, "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v at %s: %v\n%s", names, commit, err, out)
	}
	return nil
}

// BuildProbe builds the tools module's concord-healthcheck into dir.
func BuildProbe(t testing.TB, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", dir+"/", "./cmd/concord-healthcheck")
	cmd.Dir = filepath.Join(Root(t), "tools")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build concord-healthcheck: %v\n%s", err, out)
	}
}

// Run runs name with args in dir and returns its combined output; a
// non-zero exit fails the test.
func Run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
