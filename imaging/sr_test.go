package imaging

import (
	"os"
	"testing"

	"github.com/concord-fl/concord/internal/testdicom"
)

// TestCodedItems reads a Comprehensive SR that dcmtk's dump2dcm writes: the
// nested finding is found, the container's own concept name is not a CODE
// item.
func TestCodedItems(t *testing.T) {
	path := testdicom.WriteSR(t, t.TempDir(), testdicom.SR{StudyInstanceUID: "2.25.1", SeriesInstanceUID: "2.25.2", SOPInstanceUID: "2.25.3",
		Scheme: "SCT", Value: "233604007", Meaning: "Pneumonia"})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !IsStructuredReport(f.Data) {
		t.Fatal("a Comprehensive SR is not recognised as a structured report")
	}
	items := CodedItems(f.Data)
	if len(items) != 1 || items[0].Name.Key() != "DCM:121071" || items[0].Value.Key() != "SCT:233604007" || items[0].Value.Meaning != "Pneumonia" {
		t.Fatalf("coded items %+v, want one DCM:121071 = SCT:233604007 (Pneumonia)", items)
	}
	if _, err := Read(b, DefaultLimits); err == nil {
		t.Error("an SR read as an image")
	}
}
