package party_test

import (
	"testing"

	"github.com/concord-fl/concord/privacy/he"
)

// The hot paths of a round, for 1M values (245 ciphertexts). Whole-round figures with
// memory and error: concord-bench he (RoundBench).

const benchValues = 1_000_000

func BenchmarkEncrypt1M(b *testing.B) {
	f := setup(b, 3, 2)
	u := makeUpdates([]int{1}, benchValues, 1)[1]
	b.SetBytes(benchValues * 4)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.parties[1].Encrypt(uint64(i+1), u.values, u.weight); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAggregateAdd1M(b *testing.B) {
	f := setup(b, 3, 2)
	u := makeUpdates([]int{1}, benchValues, 1)[1]
	cts, err := f.parties[1].Encrypt(1, u.values, u.weight)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchValues * 4)
	for b.Loop() {
		agg, err := he.NewAggregate(f.ps, f.job, 1, benchValues)
		if err != nil {
			b.Fatal(err)
		}
		for _, ct := range cts {
			if err := agg.Add(1, ct); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkDecryptionShares1M(b *testing.B) {
	f := setup(b, 3, 2)
	for i := 0; b.Loop(); i++ {
		req := he.DecryptionRequest{Round: uint64(i + 1), Contributors: []int{1, 2, 3}, Committee: []int{1, 2}, Ciphertexts: he.CiphertextsFor(f.ps, benchValues)}
		if _, err := f.parties[1].DecryptionShares(req); err != nil {
			b.Fatal(err)
		}
	}
}

// The whole federation's key setup (every site's dealing and receiving), 50 sites, t=34.
func BenchmarkKeySetup50(b *testing.B) {
	for b.Loop() {
		setup(b, 50, 34)
	}
}
