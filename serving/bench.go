package serving

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/servetest"
	"github.com/concord-fl/concord/serving/fhirr4"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	File    string // a DICOM study of one instance (a chest X-ray)
	Studies int    // distinct studies sent (each the file with its UIDs remapped)
	Size    int    // the model's input width and height
	Clients int    // concurrent STOW-RS clients
	FHIR    string // the FHIR endpoint's base URL
	Dir     string // a scratch folder (state, models)
}

// BenchResult is `concord-bench serve --json`.
type BenchResult struct {
	Studies     int     `json:"studies"`
	Clients     int     `json:"clients"`
	InputSize   int     `json:"input_size"`
	Model       string  `json:"model"`
	FileBytes   int     `json:"file_bytes"`
	Seconds     float64 `json:"seconds"`
	StudiesPerS float64 `json:"studies_per_s"`
	// Latency from the study's STOW-RS request reaching the server to the
	// FHIR endpoint confirming its result.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// STOWP50Ms is the STOW-RS round trip alone (inference and queueing
	// included, delivery not).
	STOWP50Ms float64 `json:"stow_p50_ms"`
	// FHIRP50Ms is one transaction's round trip to the FHIR server.
	FHIRP50Ms float64 `json:"fhir_p50_ms"`
	CPUs      int     `json:"cpus"`
}

// Bench publishes and approves a cnn version at Size×Size, serves it, sends
// Studies studies by STOW-RS and waits for every result to be delivered
// to the FHIR endpoint.
func Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	if o.Studies < 1 || o.Size < 8 || o.Clients < 1 || o.FHIR == "" || o.File == "" {
		return BenchResult{}, errors.New("bench: need a file, studies >= 1, size >= 8, clients >= 1 and a FHIR endpoint")
	}
	raw, err := os.ReadFile(o.File)
	if err != nil {
		return BenchResult{}, err
	}
	studies, err := distinctStudies(raw, o.Studies)
	if err != nil {
		return BenchResult{}, fmt.Errorf("bench: %s: %w", o.File, err)
	}
	key, trust, err := servetest.Key()
	if err != nil {
		return BenchResult{}, err
	}
	models := filepath.Join(o.Dir, "models")
	spec := fmt.Sprintf("name: chest\nrounds: 1\nmin_sites: 1\nmodel: {arch: cnn, channels: 1, height: %d, width: %d, classes: 2}\n"+
		"privacy: {secure_aggregation: none}\npipeline: {width: %d, height: %d, channels: 1, normalise: percentile:0.5:99.5}\n", o.Size, o.Size, o.Size, o.Size)
	if _, err := servetest.Publish(models, key, servetest.Version{Version: "v1", SpecYAML: spec}); err != nil {
		return BenchResult{}, err
	}
	store, err := OpenStore(filepath.Join(o.Dir, "state"), time.Second)
	if err != nil {
		return BenchResult{}, err
	}
	defer store.Close()
	m, sum, err := VerifyVersion(filepath.Join(models, "v1"), trust)
	if err != nil {
		return BenchResult{}, err
	}
	if err := store.Approve(Approval{Version: "v1", ManifestSHA256: sum, DeviceUID: m.DeviceUID, By: "concord-bench", At: time.Now()}); err != nil {
		return BenchResult{}, err
	}
	approvals, _ := store.Approvals()
	model, err := LoadApproved(models, trust, approvals)
	if err != nil {
		return BenchResult{}, err
	}
	var mu sync.Mutex
	var lat, fhirMs []float64
	done := make(chan struct{})
	srv, err := New(Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(o.Dir, "state"), Classes: []string{"normal", "abnormal"},
		PatientIDSystem: "urn:oid:2.999.1", Model: model, Store: store, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		Sender: &timedSender{next: &fhirr4.Client{Base: o.FHIR, HTTP: &http.Client{Timeout: 30 * time.Second}}, ms: &fhirMs, mu: &mu},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnDelivered: func(_ string, arrived time.Time) {
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, float64(time.Since(arrived).Microseconds())/1000)
			if len(lat) == o.Studies {
				close(done)
			}
		}})
	if err != nil {
		return BenchResult{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go srv.Run(ctx)
	url := "http://" + srv.Addr().String()
	start := time.Now()
	next := make(chan []byte)
	go func() {
		defer close(next)
		for _, s := range studies {
			select {
			case next <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	var stowMs []float64
	var postErr error
	for range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				t0 := time.Now()
				status, body, err := PostSTOW(ctx, url, s)
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("bench: STOW-RS answered %d: %.300s", status, body)
				}
				mu.Lock()
				stowMs = append(stowMs, float64(time.Since(t0).Microseconds())/1000)
				if err != nil && postErr == nil {
					postErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if postErr != nil {
		return BenchResult{}, postErr
	}
	select {
	case <-done:
	case <-ctx.Done():
		return BenchResult{}, ctx.Err()
	case <-time.After(10 * time.Minute):
		return BenchResult{}, errors.New("bench: results not all delivered within 10 minutes")
	}
	secs := time.Since(start).Seconds()
	mu.Lock()
	defer mu.Unlock()
	return BenchResult{Studies: o.Studies, Clients: o.Clients, InputSize: o.Size, Model: "cnn", FileBytes: len(raw), Seconds: secs,
		StudiesPerS: float64(o.Studies) / secs, P50Ms: Percentile(lat, 0.50), P99Ms: Percentile(lat, 0.99),
		STOWP50Ms: Percentile(stowMs, 0.50), FHIRP50Ms: Percentile(fhirMs, 0.50), CPUs: runtime.GOMAXPROCS(0)}, nil
}

// distinctStudies makes n copies of one instance, each its own study: the
// Study Instance UID is replaced by another of the same length wherever it
// occurs, so every element keeps its length and the rest stays as it was.
func distinctStudies(raw []byte, n int) ([][]byte, error) {
	im, err := imaging.Read(raw, imaging.DefaultLimits)
	if err != nil {
		return nil, err
	}
	uid := im.StudyInstanceUID
	width := len(uid) - len("2.25.1")
	if width < len(fmt.Sprint(n)) {
		return nil, fmt.Errorf("study UID of %d characters is too short to vary", len(uid))
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.ReplaceAll(raw, []byte(uid), []byte(fmt.Sprintf("2.25.1%0*d", width, i)))
	}
	return out, nil
}

// timedSender records each delivery's round trip.
type timedSender struct {
	next Sender
	mu   *sync.Mutex
	ms   *[]float64
}

func (t *timedSender) Deliver(ctx context.Context, b []byte) error {
	start := time.Now()
	err := t.next.Deliver(ctx, b)
	t.mu.Lock()
	*t.ms = append(*t.ms, float64(time.Since(start).Microseconds())/1000)
	t.mu.Unlock()
	return err
}
