package registry

import (
	"bytes"
	"testing"

	"github.com/concord-fl/concord/learning"
)

// FuzzOpen feeds Open arbitrary envelopes: it must never panic, and
// whatever it accepts must be exactly what the trusted key signed.
func FuzzOpen(f *testing.F) {
	key := mustKey(f, "coordinator")
	trust := mustTrust(f, key)
	signed, err := Sign(testManifest("v1", []float32{1, 2, 3}), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add([]byte(`{"format":"concord.model-manifest/1","manifest":"e30=","key_id":"x","signature":""}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Open(data, trust)
		if err != nil {
			return
		}
		again, err := canonical(m)
		if err != nil {
			t.Fatalf("accepted a manifest that does not re-encode: %v", err)
		}
		if _, ours, _ := decode(signed); !bytes.Equal(again, mustCanonical(t, ours)) {
			t.Fatalf("accepted a manifest the key never signed: %s", again)
		}
	})
}

func mustCanonical(t *testing.T, m Manifest) []byte {
	b, err := canonical(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkDiff compares two versions of a 4M-parameter model, the size
// of a large "cnn".
func BenchmarkDiff(b *testing.B) {
	const n = 4 << 20
	l := learning.Layout{Version: "bench/1", Params: []learning.LayoutEntry{{Name: "w", Shape: []int{n - 2}, Size: n - 2}, {Name: "b", Shape: []int{2}, Offset: n - 2, Size: 2}}, Total: n}
	wa, wb := make([]float32, n), make([]float32, n)
	for i := range wa {
		wa[i], wb[i] = float32(i%7), float32(i%5)
	}
	a, c := Manifest{Version: "v1", LayoutHash: l.Hash()}, Manifest{Version: "v2", LayoutHash: l.Hash()}
	js := l.JSON()
	b.SetBytes(8 * n)
	for b.Loop() {
		if _, err := Diff(a, c, wa, wb, js); err != nil {
			b.Fatal(err)
		}
	}
}
