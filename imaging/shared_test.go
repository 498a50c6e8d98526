package imaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// needTool returns the path of a command-line tool, or fails/skips.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, "%s not found (apt-get install %s)", name, pkg)
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
		testenv.Missing(t, "github.com/suyashkumar/dicom module not downloaded (go mod download github.com/suyashkumar/dicom): %v", err)
	}
	p := filepath.Join(dir, "testdata")
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "%s: %v", p, err)
	}
	return p
}
