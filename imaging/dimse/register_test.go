package dimse

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging/pacs"
)

// TestPACSOpenUsesDIMSE: pacs.Open hands dicom:// URLs to this client
// (its own URL checks answer) and wraps it in the throttle.
func TestPACSOpenUsesDIMSE(t *testing.T) {
	if _, err := pacs.Open("dicom://ORTHANC@127.0.0.1:4242?colour=blue", pacs.Options{}); err == nil ||
		!strings.Contains(err.Error(), "colour") {
		t.Fatalf("an unknown DIMSE URL parameter: %v, want this client's refusal naming it", err)
	}
	src, err := pacs.Open("dicom://ORTHANC@127.0.0.1:4242?calling=SITEA", pacs.Options{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, ok := src.(*Client); ok {
		t.Fatal("pacs.Open returned the bare client: its operations would not be throttled")
	}
}
