package audit

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkAppend is the writer's cost per record: sign, hash, store.
func BenchmarkAppend(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchAppend(b, NewMemStore()) })
	b.Run("bolt", func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "a.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		s, err := NewBoltStore(db, "audit")
		if err != nil {
			b.Fatal(err)
		}
		benchAppend(b, s)
	})
}

func benchAppend(b *testing.B, s Store) {
	f := newFixture(b, s)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.log.Append(testRecord(f.t0, i), f.logKey); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify100k verifies a whole-log bundle of 10^5 records: every
// signature, the tree, the checkpoint.
func BenchmarkVerify100k(b *testing.B) {
	f := newFixture(b, NewMemStore())
	f.add(b, 100_000)
	f.checkpoint(b)
	bundle := f.export(b, ExportOptions{})
	b.ResetTimer()
	for b.Loop() {
		if _, err := Verify(bundle, f.trust, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100_000*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
