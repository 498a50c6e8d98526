package pacs

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testorthanc"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkIntake retrieves one series of 64 synthetic 256x256 16-bit
// instances (8 MiB) from Orthanc: "intake" through Sync (WADO-RS,
// multipart parsing, cache files, one bbolt transaction per instance),
// "http" the same WADO-RS request read and thrown away, the floor that
// Orthanc and the loopback set.
func BenchmarkIntake(b *testing.B) {
	o := testorthanc.Start(b, testorthanc.Options{})
	const n, size = 64, 256
	study, series := "2.25.1000", "2.25.1001"
	syntheticSeries(b, o, n, size)
	total := int64(n * size * size * 2)
	b.Run("http", func(b *testing.B) {
		b.SetBytes(total)
		for range b.N {
			req, _ := http.NewRequest(http.MethodGet, o.DICOMweb+"/studies/"+study+"/series/"+series, nil)
			req.Header.Set("Accept", wadoAccept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("intake", func(b *testing.B) {
		b.SetBytes(total)
		src, err := Open(o.DICOMweb, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		for range b.N {
			b.StopTimer()
			d := b.TempDir()
			db, err := bolt.Open(filepath.Join(d, "state.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			in, err := NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: filepath.Join(d, "cache"), CacheBytes: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			rep, err := in.Sync(context.Background())
			if err != nil || rep.Fetched != n {
				b.Fatalf("fetched %d: %v", rep.Fetched, err)
			}
			b.StopTimer()
			db.Close()
			b.StartTimer()
		}
	})
}
