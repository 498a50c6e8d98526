package jpeg2000

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// TestForEach: every job runs once, and of several failing jobs the lowest index's
// error is returned, whatever the number of workers.
func TestForEach(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8, 100} {
		var ran atomic.Int64
		if err := forEach(1000, workers, func(_, i int) error { ran.Add(1); return nil }); err != nil || ran.Load() != 1000 {
			t.Errorf("%d workers: %v, %d jobs run", workers, err, ran.Load())
		}
		err := forEach(1000, workers, func(w, i int) error {
			if w < 0 || w >= workers {
				t.Errorf("worker %d of %d", w, workers)
			}
			if i%100 == 37 {
				return fmt.Errorf("job %d", i)
			}
			return nil
		})
		if err == nil || err.Error() != "job 37" {
			t.Errorf("%d workers: %v, want job 37", workers, err)
		}
	}
	if err := forEach(0, 4, func(_, _ int) error { return errors.New("ran") }); err != nil {
		t.Error(err)
	}
}

// TestWorkersSameResult: the samples, or the error, do not depend on the number of
// workers, on the conformance streams whole and damaged.
func TestWorkersSameResult(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.Shared(t, "data/jpeg2000/conformance"), "*"))
	if len(files) == 0 {
		t.Skip("no conformance streams")
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 256<<10 {
			continue // the small streams cover the coding styles; keep the test quick
		}
		variants := [][]byte{data}
		for _, at := range []int{len(data) / 2} {
			d := slices.Clone(data)
			for k := at; k < at+16 && k < len(d); k++ {
				d[k] ^= 0x5A
			}
			variants = append(variants, d)
		}
		for vi, d := range variants {
			want, werr := Decode(d, Options{Workers: 1, MaxSamples: 1 << 24})
			for _, workers := range []int{2, 5} {
				got, gerr := Decode(d, Options{Workers: workers, MaxSamples: 1 << 24})
				name := fmt.Sprintf("%s variant %d, %d workers", filepath.Base(p), vi, workers)
				if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
					t.Errorf("%s: error %v, with one worker %v", name, gerr, werr)
					continue
				}
				if werr != nil {
					continue
				}
				for c := range want.Components {
					if !slices.Equal(want.Components[c].Samples, got.Components[c].Samples) {
						t.Errorf("%s: component %d differs from one worker's", name, c)
					}
				}
			}
		}
	}
}
