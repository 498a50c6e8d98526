package coordinator

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/coordinator/round"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// AggregationBench is the result of AggregateBenchmark.
type AggregationBench struct {
	Sites  int `json:"sites"`
	Params int `json:"params"`
	// IngestSeconds is the time to persist every site's update chunk by
	// chunk, as the upload handler does.
	IngestSeconds float64 `json:"ingest_seconds"`
	// AggregateSeconds is the round aggregation: reading the updates back
	// in site order, the streaming weighted sum, the server step.
	AggregateSeconds float64 `json:"aggregate_seconds"`
	// PeakHeapBytes is the most heap in use above the pre-aggregation
	// baseline while aggregating.
	PeakHeapBytes uint64 `json:"peak_heap_bytes"`
}

// AggregateBenchmark measures the coordinator's plaintext aggregation path
// on a fresh database in dir: sites updates of params float32 values are
// stored as completed uploads, then the round is aggregated exactly as in
// a running job (same code path, fedavg).
func AggregateBenchmark(ctx context.Context, dir string, sites, params int) (AggregationBench, error) {
	st, err := openStore(filepath.Join(dir, fmt.Sprintf("bench-%d-%d.db", sites, params)))
	if err != nil {
		return AggregationBench{}, err
	}
	defer st.Close()
	c := &Coordinator{st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	spec := &pb.JobSpec{Aggregation: &pb.AggregationSpec{Strategy: "fedavg"}}
	rec := &jobRecord{ID: "bench", Params: params}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4*params)
	fill := func(scale float32) {
		for i := 0; i < params; i++ {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(scale*float32(r.NormFloat64())))
		}
	}
	fill(1)
	if err := st.db.Update(func(tx *bolt.Tx) error {
		_, err := putBlob(tx, modelBlob(rec.ID, 0), buf)
		return err
	}); err != nil {
		return AggregationBench{}, err
	}
	res := AggregationBench{Sites: sites, Params: params}
	var contributors []string
	start := time.Now()
	for s := 0; s < sites; s++ {
		site := fmt.Sprintf("site-%03d", s)
		contributors = append(contributors, site)
		fill(0.01)
		name := uploadBlob(rec.ID, round.KindUpdate, 1, site)
		up := &uploadRecord{Site: site, Kind: round.KindUpdate, Round: 1, Samples: uint64(100 + s)}
		for off, i := 0, 0; off < len(buf); off, i = off+ChunkSize, i+1 {
			chunk := buf[off:min(off+ChunkSize, len(buf))]
			up.Received++
			up.Bytes += int64(len(chunk))
			if err := st.db.Update(func(tx *bolt.Tx) error {
				if err := putBlobChunk(tx, name, i, chunk); err != nil {
					return err
				}
				return putJSON(tx, bUploads, name, up)
			}); err != nil {
				return res, err
			}
		}
		up.TotalChunks, up.TotalBytes, up.Complete = up.Received, up.Bytes, true
		if err := st.db.Update(func(tx *bolt.Tx) error {
			if err := finishBlob(tx, name, blobInfo{Chunks: up.TotalChunks, Bytes: up.TotalBytes}); err != nil {
				return err
			}
			return putJSON(tx, bUploads, name, up)
		}); err != nil {
			return res, err
		}
	}
	res.IngestSeconds = time.Since(start).Seconds()
	buf = nil
	runtime.GC()
	base := heapInUse()
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if h := heapInUse(); h > peak {
				peak = h
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	start = time.Now()
	_, err = c.aggregate(ctx, rec, spec, 1, contributors, nil)
	res.AggregateSeconds = time.Since(start).Seconds()
	close(done)
	wg.Wait()
	if peak > base {
		res.PeakHeapBytes = peak - base
	}
	return res, err
}

func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
