package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TransferBench is the result of BenchTransfer.
type TransferBench struct {
	Params          int     `json:"params"`
	UpdateBytes     int64   `json:"update_bytes"`
	UploadSeconds   float64 `json:"upload_seconds"`
	UploadMBps      float64 `json:"upload_mb_per_s"`
	DownloadSeconds float64 `json:"download_seconds"`
	DownloadMBps    float64 `json:"download_mb_per_s"`
	BaseWidth       int     `json:"base_width"`
}

// instantTrainer returns the global model plus a small fixed change at
// once, so a benchmark measures the wire, not training.
type instantTrainer struct {
	mu            sync.Mutex
	called, ready time.Time
}

func (t *instantTrainer) Train(_ context.Context, req siteagent.TrainRequest) (siteagent.TrainResult, error) {
	t.mu.Lock()
	t.called = time.Now()
	t.mu.Unlock()
	w := make([]float32, len(req.Global))
	for i, v := range req.Global {
		w[i] = v + float32(i%7)*1e-4
	}
	t.mu.Lock()
	t.ready = time.Now()
	t.mu.Unlock()
	return siteagent.TrainResult{Weights: w, Samples: req.Data.N, Metrics: map[string]float64{}}, nil
}

// widthFor finds the classifier width whose parameter count is closest
// to params.
func widthFor(params int) (int, int, error) {
	best, bestN := 0, 0
	for w := 4; w <= 1024; w += 2 {
		m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: w}, 1)
		if err != nil {
			return 0, 0, err
		}
		n := m.Layout().Total
		if best == 0 || abs(n-params) < abs(bestN-params) {
			best, bestN = w, n
		}
		if n > params {
			break
		}
	}
	return best, bestN, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// BenchTransfer measures moving a model of about params parameters over
// loopback gRPC with mutual TLS: the site downloads the global model and
// uploads its update (chunked, persisted chunk by chunk at the
// coordinator before each acknowledgement), through the real agent and
// coordinator.
func BenchTransfer(ctx context.Context, params int) (TransferBench, error) {
	width, n, err := widthFor(params)
	if err != nil {
		return TransferBench{}, err
	}
	dir, err := os.MkdirTemp("", "concord-bench-transfer")
	if err != nil {
		return TransferBench{}, err
	}
	defer os.RemoveAll(dir)
	fed, err := Start(Options{Dir: dir})
	if err != nil {
		return TransferBench{}, err
	}
	defer fed.Close()
	tr := &instantTrainer{}
	if err := fed.AddSite("bench-site", SiteOptions{Data: siteagent.MemoryData{Data: blobs(8, 1)}, Trainer: tr}); err != nil {
		return TransferBench{}, err
	}
	if err := fed.WaitSites(ctx, 1); err != nil {
		return TransferBench{}, err
	}
	spec := &pb.JobSpec{Name: "transfer-bench", Model: &pb.ModelSpec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: uint32(width)},
		Rounds: 1, MinSites: 1, Privacy: &pb.PrivacySpec{SecureAggregation: "none"}, Seed: 1}
	jobspec.Defaults(spec)
	job, err := fed.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		return TransferBench{}, err
	}
	stream, err := fed.Admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: job.Id})
	if err != nil {
		return TransferBench{}, err
	}
	var sent, accepted time.Time
	var final *pb.Job
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return TransferBench{}, err
		}
		final = ev.Job
		switch {
		case ev.Kind == "task.sent" && sent.IsZero():
			sent = time.UnixMilli(ev.UnixMillis)
		case ev.Kind == "upload.accepted":
			accepted = time.UnixMilli(ev.UnixMillis)
		}
	}
	if final == nil || final.State != "completed" {
		return TransferBench{}, fmt.Errorf("benchmark job did not complete: %v", final)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	bytes := int64(4 * n)
	res := TransferBench{Params: n, UpdateBytes: bytes, BaseWidth: width,
		UploadSeconds: accepted.Sub(tr.ready).Seconds(), DownloadSeconds: tr.called.Sub(sent).Seconds()}
	res.UploadMBps = float64(bytes) / 1e6 / res.UploadSeconds
	res.DownloadMBps = float64(bytes) / 1e6 / res.DownloadSeconds
	return res, nil
}

// blobs makes a small learnable set for benchmarks and tests: class 1
// has a bright square.
func blobs(n int, seed uint64) learning.Dataset {
	r := rand.New(rand.NewPCG(seed, 7))
	ds := learning.Dataset{N: n, C: 1, H: 28, W: 28, X: make([]float32, n*28*28), Y: make([]int, n)}
	for i := 0; i < n; i++ {
		ds.Y[i] = i % 2
		img := ds.X[i*784 : (i+1)*784]
		for p := range img {
			img[p] = float32(r.NormFloat64() * 0.3)
		}
		if ds.Y[i] == 1 {
			x0, y0 := r.IntN(20), r.IntN(20)
			for y := y0; y < y0+6; y++ {
				for x := x0; x < x0+6; x++ {
					img[y*28+x] += 1.5
				}
			}
		}
	}
	return ds
}
