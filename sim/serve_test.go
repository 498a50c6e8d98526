package sim

import (
	"context"
	"testing"

	"github.com/concord-fl/concord/internal/testfhir"
)

// TestServeAfterPublishing: the published version, installed at one
// hospital as `concordctl models download` would and approved, serves
// generated studies sent by STOW-RS; each result reaches a real FHIR
// server.
func TestServeAfterPublishing(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated job")
	}
	base := testfhir.Start(t)
	sum, err := Run(context.Background(), Config{Sites: 3, Rounds: 1, Seed: 5, Out: t.TempDir(), ImagesPerSite: 24,
		SecureAggregation: "none", Serve: 6, ServeFHIR: base})
	if err != nil {
		t.Fatal(err)
	}
	if sum.PublishedVersion == "" || sum.ServeSummary == nil {
		t.Fatalf("published %q, serving %+v", sum.PublishedVersion, sum.ServeSummary)
	}
	s := sum.ServeSummary
	if s.ServeError != "" || s.Served != 6 || s.FHIRDelivered != 6 || s.ServeP99Ms <= 0 {
		t.Fatalf("serving: %+v", *s)
	}
}
