// Package testdicom writes DICOM objects for tests with dcmtk, a real
// implementation, rather than with our own writer: a structured report
// whose finding is one coded content item.
package testdicom

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// SR names the report WriteSR writes.
type SR struct {
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID string
	// Finding is the coded value of the report's one "Finding" (DCM 121071)
	// item: scheme, value, meaning.
	Scheme, Value, Meaning string
}

// WriteSR writes a Comprehensive SR with dcmtk's dump2dcm into dir and
// returns its path; without dcmtk the test fails under CI and skips
// elsewhere.
func WriteSR(tb testing.TB, dir string, sr SR) string {
	tb.Helper()
	dump2dcm, err := exec.LookPath("dump2dcm")
	if err != nil {
		testenv.Missing(tb, "dcmtk's dump2dcm is not installed (apt-get install dcmtk)")
	}
	in := filepath.Join(dir, sr.SOPInstanceUID+".dump")
	if err := os.WriteFile(in, []byte(srDump(sr)), 0o600); err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, sr.SOPInstanceUID+".dcm")
	if b, err := exec.Command(dump2dcm, "+te", in, out).CombinedOutput(); err != nil {
		tb.Fatalf("dump2dcm: %v: %s", err, b)
	}
	return out
}

func srDump(sr SR) string {
	return fmt.Sprintf(`(0008,0016) UI =ComprehensiveSRStorage
(0008,0018) UI [%s]
(0008,0020) DA [20240131]
(0008,0023) DA [20240131]
(0008,0030) TM [120000]
(0008,0033) TM [120000]
(0008,0050) SH []
(0008,0060) CS [SR]
(0008,0070) LO [Concord test]
(0008,0090) PN []
(0010,0010) PN [Test^Patient]
(0010,0020) LO [P1]
(0010,0030) DA []
(0010,0040) CS []
(0020,000d) UI [%s]
(0020,000e) UI [%s]
(0020,0010) SH []
(0020,0011) IS [1]
(0020,0013) IS [1]
(0040,a040) CS [CONTAINER]
(0040,a050) CS [SEPARATE]
(0040,a491) CS [COMPLETE]
(0040,a493) CS [UNVERIFIED]
(0040,a043) SQ (Sequence with undefined length)
(fffe,e000) na (Item with undefined length)
(0008,0100) SH [126000]
(0008,0102) SH [DCM]
(0008,0104) LO [Imaging Measurement Report]
(fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,a730) SQ (Sequence with undefined length)
(fffe,e000) na (Item with undefined length)
(0040,a010) CS [CONTAINS]
(0040,a040) CS [CODE]
(0040,a043) SQ (Sequence with undefined length)
(fffe,e000) na (Item with undefined length)
(0008,0100) SH [121071]
(0008,0102) SH [DCM]
(0008,0104) LO [Finding]
(fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,a168) SQ (Sequence with undefined length)
(fffe,e000) na (Item with undefined length)
(0008,0100) SH [%s]
(0008,0102) SH [%s]
(0008,0104) LO [%s]
(fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
`, sr.SOPInstanceUID, sr.StudyInstanceUID, sr.SeriesInstanceUID, sr.Value, sr.Scheme, sr.Meaning)
}
