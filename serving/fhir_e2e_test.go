package serving

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testfhir"
	"github.com/concord-fl/concord/serving/fhirr4"
)

// search returns the resources of one type on the FHIR server.
func search(t testing.TB, base, typ string) []json.RawMessage {
	t.Helper()
	resp, err := http.Get(base + "/" + typ + "?_count=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search %s: %s %s", typ, resp.Status, b)
	}
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	for _, e := range bundle.Entry {
		out = append(out, e.Resource)
	}
	return out
}

func TestSTOWToARealFHIRServerOnceEach(t *testing.T) {
	base := testfhir.Start(t)
	s := newSite(t)
	s.approve(t, "v1")
	srv := s.start(t, &fhirr4.Client{Base: base, HTTP: &http.Client{Timeout: 30 * time.Second}}, nil)
	url := "http://" + srv.Addr().String()
	ct := readFile(t, pydicom(t, "CT_small.dcm"))
	if status, ds := stow(t, url, ct, readFile(t, pydicom(t, "MR_small.dcm"))); status != http.StatusOK {
		t.Fatalf("STOW-RS %d %v", status, ds)
	}
	delivered := func(n uint64) func() bool {
		return func() bool { c, _ := s.store.Counts(); return c.Delivered == n }
	}
	waitFor(t, delivered(2), "two results delivered")
	reports := search(t, base, "DiagnosticReport")
	if len(reports) != 2 {
		t.Fatalf("%d DiagnosticReports on the server, want 2", len(reports))
	}
	resources := []json.RawMessage{reports[0]}
	for _, typ := range []string{"Observation", "Device", "Provenance"} {
		rs := search(t, base, typ)
		if len(rs) == 0 {
			t.Fatalf("no %s on the server", typ)
		}
		resources = append(resources, rs[0])
	}
	var raw [][]byte
	for _, r := range resources {
		raw = append(raw, r)
	}
	for i, issues := range testfhir.Check(t, raw...) {
		for _, is := range issues {
			if is.Severity == "error" || is.Severity == "fatal" {
				t.Errorf("%.40s: R4 validation: %s", resources[i], is)
			}
		}
	}
	// The same study again: delivered, and nothing new created.
	if status, _ := stow(t, url, ct); status != http.StatusOK {
		t.Fatalf("second STOW-RS %d", status)
	}
	waitFor(t, delivered(3), "the repeated study's result delivered")
	if n := len(search(t, base, "DiagnosticReport")); n != 2 {
		t.Fatalf("%d DiagnosticReports after sending a study twice, want 2", n)
	}
	if c, _ := s.store.Counts(); c.Parked != 0 {
		t.Fatalf("parked %d", c.Parked)
	}
}
