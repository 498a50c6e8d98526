package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The sample report, signed with the test key, as JSON and CSV. Reviewers
// read format changes in their diffs; and a report signed by an earlier
// version must keep verifying, so a change to the canonical form shows
// here first (regenerate with -update only when that break is intended).
func TestGoldenFiles(t *testing.T) {
	pub, _ := testKey()
	r := signedSample(t)
	for _, f := range []Format{FormatJSON, FormatCSV} {
		t.Run(string(f), func(t *testing.T) {
			path := filepath.Join("testdata", "sample."+string(f))
			got := render(t, r, f)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if _, err := ExtractAndVerify(want, pub); err != nil {
				t.Errorf("the golden %s no longer verifies: %v", path, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the rendering now; review, then go test -update", path)
			}
		})
	}
}
