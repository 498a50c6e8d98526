package imaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sharedDir finds the shared data folder: $CONCORD_SHARED, else ../shared next to the
// repository root. Missing data fails the test in CI and skips it elsewhere.
func sharedDir(t testing.TB, sub string) string {
	t.Helper()
	base := os.Getenv("CONCORD_SHARED")
	if base == "" {
		dir, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				base = filepath.Join(dir, "..", "shared")
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	p := filepath.Join(base, sub)
	if _, err := os.Stat(p); err != nil {
		missing(t, "shared data %s not found (set CONCORD_SHARED): %v", p, err)
	}
	return p
}

// missing fails under CI (env CI set) and skips elsewhere.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// systemPython returns Debian's python3 with pydicom and numpy, or fails/skips.
func systemPython(t testing.TB) string {
	t.Helper()
	py := os.Getenv("CONCORD_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import pydicom, numpy").Run(); err != nil {
		missing(t, "%s cannot import pydicom and numpy (apt-get install python3-pydicom python3-numpy): %v", py, err)
	}
	return py
}

// needTool returns the path of a command-line tool, or fails/skips.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found (apt-get install %s)", name, pkg)
	}
	return p
}

// moduleTestdata returns the testdata folder of github.com/suyashkumar/dicom@v1.1.0.
func moduleTestdata(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/suyashkumar/dicom").Output()
	dir := string(out)
	for len(dir) > 0 && (dir[len(dir)-1] == '\n' || dir[len(dir)-1] == '\r') {
		dir = dir[:len(dir)-1]
	}
	if err != nil || dir == "" {
		missing(t, "github.com/suyashkumar/dicom module not downloaded (go mod download github.com/suyashkumar/dicom): %v", err)
	}
	p := filepath.Join(dir, "testdata")
	if _, err := os.Stat(p); err != nil {
		missing(t, "%s: %v", p, err)
	}
	return p
}
