package installtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/concord-fl/concord/tools/internal/testrepo"
)

var (
	distMu  sync.Mutex
	distDir string
	dists   = map[string]string{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if distDir != "" {
		makeWritable(distDir)
		os.RemoveAll(distDir)
	}
	if prevDir != "" {
		os.RemoveAll(prevDir)
	}
	os.Exit(code)
}

// The previous release's binaries, built from git history once per run
// for every test that needs them.
var (
	prevOnce  sync.Once
	prevDir   string
	prevBuilt bool
	prevErr   error
)

// previousRelease returns the folder holding the previous release's
// concord-sim, coordinator and site-agent. In a checkout without the
// history (a shallow clone) the test is skipped, except in CI.
func previousRelease(t *testing.T) string {
	t.Helper()
	prevOnce.Do(func() {
		commit := strings.TrimSpace(mustRead(t, "testdata/previous-release"))
		if prevDir, prevErr = os.MkdirTemp("", "concord-previous"); prevErr != nil {
			return
		}
		if prevErr = testrepo.BuildAt(t, commit, prevDir, "previous", "concord-sim", "coordinator", "site-agent"); prevErr == nil {
			prevBuilt = true
		}
	})
	switch {
	case errors.Is(prevErr, testrepo.ErrNoHistory) && os.Getenv("CI") == "":
		t.Skipf("%v (a shallow clone); CI, which has the history, runs it", prevErr)
	case prevErr != nil:
		t.Fatal(prevErr)
	case !prevBuilt:
		t.Fatal("building the previous release failed in an earlier test")
	}
	return prevDir
}

// release builds the archive of version with `make dist` (once per test
// run), checks its outer checksum file, unpacks it and returns the release
// folder.
func release(t *testing.T, version string) string {
	t.Helper()
	distMu.Lock()
	defer distMu.Unlock()
	if dir, ok := dists[version]; ok {
		return dir
	}
	if distDir == "" {
		d, err := os.MkdirTemp("", "concord-dist-")
		if err != nil {
			t.Fatal(err)
		}
		distDir = d
	}
	out := filepath.Join(distDir, version)
	testrepo.Run(t, testrepo.Root(t), nil, "make", "--no-print-directory", "dist", "VERSION="+version, "DIST="+out, "BIN="+filepath.Join(out, "bin"))
	name := "concord-" + version + "-linux-amd64"
	testrepo.Run(t, out, nil, "sha256sum", "--strict", "-c", name+".tar.gz.sha256")
	unpacked := filepath.Join(out, "unpacked")
	if err := os.MkdirAll(unpacked, 0o755); err != nil {
		t.Fatal(err)
	}
	testrepo.Run(t, unpacked, nil, "tar", "-xzf", filepath.Join(out, name+".tar.gz"))
	dir := filepath.Join(unpacked, name)
	dists[version] = dir
	return dir
}

// script runs install.sh from dir with args; it returns the output and
// whether it exited 0.
func script(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, "install.sh"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("install.sh %v: %v", args, err)
		}
	}
	return string(out), err == nil
}

func mustScript(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, ok := script(t, dir, args...)
	if !ok {
		t.Fatalf("install.sh %v failed:\n%s", args, out)
	}
	return out
}

func refused(t *testing.T, dir, want string, args ...string) {
	t.Helper()
	out, ok := script(t, dir, args...)
	if ok || !strings.Contains(out, want) {
		t.Errorf("install.sh %v: success %v, want a refusal with %q:\n%s", args, ok, want, out)
	}
}

// makeWritable undoes install.sh's read-only release folders so that a
// non-root user can delete them.
func makeWritable(dir string) {
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
}

func tempRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() { makeWritable(root) })
	return root
}

func readLink(t *testing.T, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	return target
}
