package learning

import (
	"os/exec"
	"strings"
	"testing"
)

// Learning takes arrays, never DICOM: neither imaging (the DICOM parser) nor
// a DICOM library may be among its dependencies. MedMNIST files are read
// through internal/npy for that reason.
func TestLearningImportsNoDICOM(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no dependencies")
	}
	for _, d := range deps {
		if d == "github.com/concord-fl/concord/imaging" || strings.Contains(d, "dicom") {
			t.Errorf("learning depends on %s", d)
		}
	}
}
