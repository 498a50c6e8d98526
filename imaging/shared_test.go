package imaging

import (
	"github.com/concord-fl/concord/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sharedDir finds the shared data folder: $CONCORD_SHARED, else ../shared next to the
// repository root. Missing data fails the test in CI and skips it elsewhere.
func sharedDir(t testing.TB, sub string) string {
	return testenv.Shared(t, sub)
}

// missing fails under CI (env CI set) and skips elsewhere.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Missing(t, format, args...)
}

// systemPython returns Debian's python3 with pydicom and numpy, or fails/skips.
func systemPython(t testing.TB) string {
	return testenv.Python(t, "pydicom", "numpy")
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
