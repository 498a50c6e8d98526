package serving

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/servetest"
	"github.com/concord-fl/concord/jobspec"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestFeedbackReachesTheNextJobsData: a clinician's correction is an
// example of the corrected class in the data the site trains on next.
func TestFeedbackReachesTheNextJobsData(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	data := filepath.Join(t.TempDir(), "data")
	for _, c := range []string{"normal", "pneumonia"} {
		os.MkdirAll(filepath.Join(data, c), 0o755)
		os.WriteFile(filepath.Join(data, c, "a.dcm"), readFile(t, pydicom(t, "MR_small.dcm")), 0o644)
	}
	spec, err := jobspec.Parse([]byte(servetest.SpecYAML))
	if err != nil {
		t.Fatal(err)
	}
	src := &siteagent.DICOMFolder{Dir: data, Classes: []string{"normal", "pneumonia"}, Feedback: s.feedback}
	before, err := src.Dataset(context.Background(), spec)
	if err != nil || before.N != 2 {
		t.Fatalf("before feedback: %d examples, %v", before.N, err)
	}
	srv := s.start(t, &recorder{}, nil)
	url := "http://" + srv.Addr().String()
	_, ds := stow(t, url, readFile(t, pydicom(t, "CT_small.dcm")))
	id := value(seq(ds, tagReferencedSOPSeq)[0], tagResultID).(string)
	resp, err := http.Post(url+"/feedback", "application/json",
		strings.NewReader(fmt.Sprintf(`{"result_id":%q,"verdict":"corrected","label":"pneumonia"}`, id)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("feedback: %v %v", resp, err)
	}
	resp.Body.Close()
	after, err := src.Dataset(context.Background(), spec)
	if err != nil || after.N != 3 || after.Y[2] != 1 {
		t.Fatalf("after feedback: %d examples, labels %v, %v; want the correction as a third example, label 1", after.N, after.Y, err)
	}
}
