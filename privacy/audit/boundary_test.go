package audit

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// The audit log is read offline by auditors and written by the coordinator
// behind its own API: it must not import grpc or any of our daemons.
func TestDependencies(t *testing.T) {
	root := testenv.RepoRoot()
	if root == "" {
		t.Fatal("go.mod not found above the test directory")
	}
	cmd := exec.Command("go", "list", "-deps", "./privacy/audit")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned %d packages", len(deps))
	}
	const module = "github.com/concord-fl/concord/"
	for _, d := range deps {
		if strings.HasPrefix(d, "google.golang.org/grpc") {
			t.Errorf("privacy/audit depends on %s", d)
		}
		if strings.HasPrefix(d, module) && d != module+"privacy/audit" {
			t.Errorf("privacy/audit depends on %s; it stands alone", d)
		}
	}
}
