package sim

import (
	"context"
	"path/filepath"
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

// TestServeSegmentationAfterPublishing: a published U-Net serves generated
// CT slices sent by STOW-RS; each result (a DICOM SEG kept at the site and
// its FHIR report) reaches a real FHIR server.
func TestServeSegmentationAfterPublishing(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated job")
	}
	base := testfhir.Start(t)
	out := t.TempDir()
	sum, err := Run(context.Background(), Config{Task: TaskSegmentation, Sites: 2, Rounds: 1, Seed: 5, Out: out, ImagesPerSite: 16,
		BatchSize: 8, SecureAggregation: "none", Serve: 3, ServeFHIR: base})
	if err != nil {
		t.Fatal(err)
	}
	if sum.PublishedVersion == "" || sum.ServeSummary == nil {
		t.Fatalf("published %q, serving %+v", sum.PublishedVersion, sum.ServeSummary)
	}
	s := sum.ServeSummary
	if s.ServeError != "" || s.Served != 3 || s.FHIRDelivered != 3 || s.ServeP99Ms <= 0 {
		t.Fatalf("serving: %+v", *s)
	}
	segs, err := filepath.Glob(filepath.Join(out, "serve", "*", "state", "serve", "seg", "*.dcm"))
	if err != nil || len(segs) != 3 {
		t.Fatalf("%d DICOM SEGs kept at the serving site (%v), want 3", len(segs), err)
	}
}
