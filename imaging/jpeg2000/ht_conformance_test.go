package jpeg2000

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// TestHTShared decodes the HTJ2K codestreams of the shared corpus (cleanup
// passes only) and compares them with opj_decompress: identical for reversible
// streams, within one for 9/7.
func TestHTShared(t *testing.T) {
	dir := testenv.Shared(t, "data/jpeg2000/htj2k")
	var files []string
	for _, pat := range []string{"*.j2k", "*.j2c", "*.jph", "*.jhc"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		files = append(files, m...)
	}
	if len(files) < 4 {
		t.Fatalf("only %d HTJ2K streams in %s", len(files), dir)
	}
	compareFiles(t, files)
}

// TestHTRefinement does the same for Kakadu streams whose code-blocks also hold
// SigProp and MagRef passes (testdata/htj2k/README.md).
func TestHTRefinement(t *testing.T) {
	files, _ := filepath.Glob("testdata/htj2k/*.jph")
	if len(files) < 3 {
		t.Fatalf("only %d streams in testdata/htj2k", len(files))
	}
	compareFiles(t, files)
}

func compareFiles(t *testing.T, files []string) {
	opj := needOPJ(t)
	sort.Strings(files)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			img, err := Decode(data, Options{})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			refPath := path
			if cs, _ := codestream(data); len(cs) != len(data) {
				refPath = filepath.Join(t.TempDir(), "cs.j2k")
				if err := os.WriteFile(refPath, cs, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			compareWithReference(t, reference(t, opj, refPath, 0, img), img, isIrreversible(data))
		})
	}
}

// compareWithReference fails unless every component equals ref's, or for 9/7
// differs by at most one.
func compareWithReference(t *testing.T, ref [][]int32, img *Image, irreversible bool) {
	t.Helper()
	if len(ref) != len(img.Components) {
		t.Fatalf("%d components, reference %d", len(img.Components), len(ref))
	}
	for c, comp := range img.Components {
		if len(ref[c]) != len(comp.Samples) {
			t.Fatalf("component %d: %d samples (%dx%d), reference %d", c, len(comp.Samples), comp.Width, comp.Height, len(ref[c]))
		}
		d, n := maxDiff(comp.Samples, ref[c])
		switch {
		case d == 0:
		case d <= 1 && irreversible:
			t.Logf("component %d: %d samples differ by one (9/7)", c, n)
		default:
			t.Errorf("component %d: %d samples differ from the reference, max %d", c, n, d)
		}
	}
}
