// Package testenv finds what tests need from outside the repository: the
// project's shared data folder and Debian's python3 with the reference
// libraries. When something is missing, a test fails under CI (env CI set:
// CI always has it, so its absence is a broken setup) and is skipped
// elsewhere.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RepoRoot is the folder holding go.mod, found upwards from the working
// directory; "" if there is none.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// SharedDir is $CONCORD_SHARED, else ../shared beside the repository root.
// It is not checked.
func SharedDir() string {
	if s := os.Getenv("CONCORD_SHARED"); s != "" {
		return s
	}
	if root := RepoRoot(); root != "" {
		return filepath.Join(root, "..", "shared")
	}
	return ""
}

// Shared returns the path of rel inside the shared folder, or fails (CI)
// or skips the test when it does not exist.
func Shared(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(SharedDir(), rel)
	if _, err := os.Stat(p); err != nil {
		Missing(tb, "shared data %s is missing (set CONCORD_SHARED): %v", rel, err)
	}
	return p
}

// Missing fails the test under CI and skips it elsewhere.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format, args...)
}

// Python returns $CONCORD_PYTHON or Debian's /usr/bin/python3 (another
// python3 earlier on PATH usually lacks the Debian packages) after checking
// that it imports modules; otherwise the test fails (CI) or skips.
func Python(tb testing.TB, modules ...string) string {
	tb.Helper()
	py := os.Getenv("CONCORD_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if len(modules) > 0 {
		if out, err := exec.Command(py, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput(); err != nil {
			Missing(tb, "%s cannot import %s (install the Debian packages .ci/run lists): %v %s", py, strings.Join(modules, ", "), err, out)
		}
	}
	return py
}

// Deps lists the packages pkg depends on (itself included), by `go list
// -deps` from the repository root: what the tests that enforce a design's
// "never imports" read. It fails the test when the list cannot be had.
func Deps(tb testing.TB, pkg string) []string {
	tb.Helper()
	root := RepoRoot()
	if root == "" {
		tb.Fatal("go.mod not found above the test directory")
	}
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		tb.Fatalf("go list -deps %s listed nothing", pkg)
	}
	return deps
}
