package dp

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// One DP-SGD step's clipping and noise for a batch of 64 gradients of a
// 100k-weight model.
func BenchmarkSGDClipAndNoise(b *testing.B) {
	const batch, p = 64, 100_000
	rng := rand.New(rand.NewPCG(1, 2))
	grads := make([][]float32, batch)
	for i := range grads {
		grads[i] = make([]float32, p)
		for j := range grads[i] {
			grads[i][j] = float32(rng.NormFloat64())
		}
	}
	out := make([]float32, p)
	s := &SGD{Clip: 1, NoiseMultiplier: 1, Source: rng}
	b.SetBytes(batch * p * 4)
	for b.Loop() {
		clear(out)
		s.ClipAndNoise(grads, out)
	}
}

// Spent runs once per Check and ~40 times per Plan.
func BenchmarkSpent(b *testing.B) {
	for b.Loop() {
		if _, err := Spent(1.1, 0.01, 3000, 1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzLedgerUnmarshal: a stored ledger read back from disk never panics,
// and one that loads re-marshals to a ledger that loads the same.
func FuzzLedgerUnmarshal(f *testing.F) {
	l, _ := NewLedger(Budget{Record, 8, 1e-5})
	l.Charge(Entry{JobID: "1", Level: Record, Mechanism: MechanismSubsampledGaussian, NoiseMultiplier: 1, SampleRate: 0.01,
		Steps: 100, Delta: 1e-5, Accountant: AccountantVersion, Time: time.Unix(1, 0).UTC(), UploadSHA256: strings.Repeat("0", 64)})
	data, _ := json.Marshal(l)
	f.Add(data)
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return // bound the work per input
		}
		var l Ledger
		if err := l.UnmarshalJSON(data); err != nil {
			return
		}
		again, err := json.Marshal(&l)
		if err != nil {
			t.Fatal(err)
		}
		var back Ledger
		if err := back.UnmarshalJSON(again); err != nil {
			t.Fatalf("a loaded ledger does not reload: %v", err)
		}
		a, _ := l.Spent()
		b, _ := back.Spent()
		if a != b {
			t.Fatalf("spent %v, reloaded %v", a, b)
		}
	})
}
