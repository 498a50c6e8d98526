package fhirr4

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.bundle.json from Bundle's output")

// TestBundleGolden pins the Bundles of the two fixture Results, indented for
// review. A change in the resources shows as a diff; after reviewing it, run
// go test ./serving/fhirr4 -run Golden -update.
func TestBundleGolden(t *testing.T) {
	for _, r := range []Result{classification(), segmentation()} {
		var got bytes.Buffer
		if err := json.Indent(&got, mustBundle(t, r), "", "  "); err != nil {
			t.Fatal(err)
		}
		got.WriteByte('\n')
		path := filepath.Join("testdata", r.Task+".bundle.json")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s Bundle differs from %s; review and run with -update", r.Task, path)
		}
	}
}
