package learning

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// Learning takes arrays, never DICOM: neither imaging (the DICOM parser) nor
// a DICOM library may be among its dependencies. MedMNIST files are read
// through internal/npy for that reason.
func TestLearningImportsNoDICOM(t *testing.T) {
	for _, d := range testenv.Deps(t, "./learning") {
		if d == "github.com/concord-fl/concord/imaging" || strings.Contains(d, "dicom") {
			t.Errorf("learning depends on %s", d)
		}
	}
}
