package serving

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/concord-fl/concord/imaging"
)

// BenchmarkSTOW is one study through STOW-RS: parse, pipeline, model,
// durable commit (the FHIR delivery runs behind it; concord-bench serve
// measures up to the FHIR server's confirmation).
func BenchmarkSTOW(b *testing.B) {
	s := newSite(b)
	s.approve(b, "v1")
	srv := s.start(b, &recorder{}, nil)
	url := "http://" + srv.Addr().String()
	raw := readFile(b, pydicom(b, "MR_small.dcm"))
	studies := make([][]byte, b.N)
	for i := range studies {
		var err error
		if studies[i], err = imaging.NewDeidentifier([]byte(fmt.Sprint(i))).Bytes(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if status, ds := stow(b, url, studies[i]); status != http.StatusOK {
			b.Fatalf("%d %v", status, ds)
		}
	}
}
