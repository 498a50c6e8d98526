package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Sender delivers one FHIR transaction bundle. fhirr4.Client is the one
// used; an error that is a *fhirr4.DeliveryError with Retryable false is
// permanent, any other error is retried.
type Sender interface {
	Deliver(ctx context.Context, bundle []byte) error
}

// Config is the server's runtime configuration (agent.yaml's serve:
// block, converted at the edge by cmd/site-agent).
type Config struct {
	// Listen is the HTTP address of STOW-RS, feedback and /metrics; empty:
	// no listener (watched folder only).
	Listen string
	// WatchDir, when set, is polled every WatchInterval for new .dcm files;
	// processed ones move to WatchDir/processed, unreadable ones to
	// WatchDir/failed.
	WatchDir      string
	WatchInterval time.Duration
	// StateDir keeps the studies served (for feedback) under serve/studies.
	StateDir string
	// FeedbackDir is the site's feedback folder (dir/<class>/…), the one
	// the next job trains on.
	FeedbackDir string
	// Classes names a classifier's outputs in label order (the site's
	// data.classes, or its data folder's sub-folders in sorted order). A
	// segmentation model does not use it.
	Classes []string
	// SegmentLabel names a segmentation model's foreground in the DICOM SEG
	// and the FHIR result (default: the model's name).
	SegmentLabel string
	// SEGStore, when set, is the DICOMweb root of the PACS (its STOW-RS
	// endpoint is SEGStore/studies) that each DICOM SEG is stored in,
	// through a durable queue like the FHIR results'; SEGStoreTimeout
	// bounds one request (default 60s).
	SEGStore        string
	SEGStoreTimeout time.Duration
	// PatientIDSystem is the hospital's patient identifier system URI.
	PatientIDSystem string
	// Publisher names the consortium on the model's Device.
	Publisher string

	Model  *Model
	Store  *Store
	Sender Sender
	Logger *slog.Logger

	// MinBackoff and MaxBackoff bound the delay between delivery attempts
	// (defaults 500ms and 5m).
	MinBackoff, MaxBackoff time.Duration
	// KeepStudies is how long a served study's instances are kept for
	// feedback (default 30 days); older ones are deleted.
	KeepStudies time.Duration
	// MaxRequestBytes bounds one STOW-RS request (default 256 MiB) and
	// MaxParts its instances (default 1000).
	MaxRequestBytes int64
	MaxParts        int
	// OnDelivered, when set, is called after each result is delivered
	// with the time its study arrived (benchmarks measure latency by it).
	OnDelivered func(resultID string, arrived time.Time)
}

// maxConcurrentSTOW bounds the STOW-RS requests held in memory at once;
// more wait for a slot.
const maxConcurrentSTOW = 4

// Server serves one approved model version.
type Server struct {
	cfg        Config
	model      *Model
	store      *Store
	classes    []string
	studiesDir string
	segDir     string // the DICOM SEGs of segmentation results, kept after the studies
	log        *slog.Logger
	lis        net.Listener
	wake       chan struct{}
	segWake    chan struct{}
	segHTTP    *http.Client
	slots      chan struct{} // STOW-RS requests in progress, each up to MaxRequestBytes in memory
	mu         sync.Mutex    // serialises feedback writes
}

// New checks cfg and opens the listener (so Addr is known before Run).
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Model == nil || cfg.Store == nil || cfg.Sender == nil:
		return nil, errors.New("serving: a model, a store and a sender are required")
	case cfg.StateDir == "":
		return nil, errors.New("serving: no state folder")
	case cfg.Listen == "" && cfg.WatchDir == "":
		return nil, errors.New("serve: neither serve.listen nor serve.watch_dir is set: nothing would arrive")
	}
	if cfg.Model.Segments() {
		cfg.Classes = nil
		if cfg.SegmentLabel == "" {
			cfg.SegmentLabel = cfg.Model.Manifest.Name
		}
		if err := segmentLabelOK(cfg.SegmentLabel); err != nil {
			return nil, err
		}
	} else if k := cfg.Model.Net.Spec().Classes; len(cfg.Classes) != k {
		return nil, fmt.Errorf("serve: version %s has %d outputs, the site names %d classes (%v): set data.classes in label order",
			cfg.Model.Manifest.Version, k, len(cfg.Classes), cfg.Classes)
	}
	if cfg.SEGStore != "" {
		u, err := url.Parse(cfg.SEGStore)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("serve: SEG store %q: give the PACS's DICOMweb root, http(s)://host/path", cfg.SEGStore)
		}
		if !cfg.Model.Segments() {
			return nil, fmt.Errorf("serve: a SEG store is set but version %s is a classifier: it writes no DICOM SEG", cfg.Model.Manifest.Version)
		}
		cfg.SEGStore = strings.TrimRight(cfg.SEGStore, "/")
	}
	if cfg.SEGStoreTimeout <= 0 {
		cfg.SEGStoreTimeout = time.Minute
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("serve: max backoff %v is below min backoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 256 << 20
	}
	if cfg.MaxParts <= 0 {
		cfg.MaxParts = 1000
	}
	if cfg.KeepStudies <= 0 {
		cfg.KeepStudies = 30 * 24 * time.Hour
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, model: cfg.Model, store: cfg.Store, classes: cfg.Classes,
		studiesDir: filepath.Join(cfg.StateDir, "serve", "studies"), segDir: filepath.Join(cfg.StateDir, "serve", "seg"), log: cfg.Logger, wake: make(chan struct{}, 1), segWake: make(chan struct{}, 1),
		segHTTP: &http.Client{Timeout: cfg.SEGStoreTimeout},
		slots:   make(chan struct{}, maxConcurrentSTOW)}
	if cfg.Listen != "" {
		lis, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("serve.listen: %w", err)
		}
		s.lis = lis
	}
	return s, nil
}

// Addr is the listener's address, or nil without one.
func (s *Server) Addr() net.Addr {
	if s.lis == nil {
		return nil
	}
	return s.lis.Addr()
}

// Handler is the HTTP API: STOW-RS, feedback and metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dicomweb/studies", s.serveSTOW)
	mux.HandleFunc("POST /feedback", s.serveFeedback)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	return mux
}

// Run serves until ctx is cancelled, then stops within a few seconds. The
// queue is on disk: what was not delivered is delivered by the next Run.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("serving", "version", s.model.Manifest.Version, "device_uid", s.model.Manifest.DeviceUID,
		"threshold", s.model.Threshold, "pipeline", short(s.model.Manifest.PipelineHash))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(s.deliverLoop)
	run(s.pruneLoop)
	if s.cfg.WatchDir != "" {
		run(s.watchLoop)
	}
	if s.cfg.SEGStore != "" {
		run(s.segLoop)
	}
	var srvErr error
	if s.lis != nil {
		srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		run(func(ctx context.Context) {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
		})
		if err := srv.Serve(s.lis); !errors.Is(err, http.ErrServerClosed) {
			srvErr = fmt.Errorf("serve.listen: %w", err)
			cancel()
		}
	}
	<-ctx.Done()
	wg.Wait()
	return srvErr
}

func (s *Server) wakeDeliverer() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pruneLoop deletes the studies kept for feedback once KeepStudies has
// passed, at start and hourly.
func (s *Server) pruneLoop(ctx context.Context) {
	for {
		ids, err := s.store.pruneResults(time.Now().Add(-s.cfg.KeepStudies))
		if err != nil {
			s.log.Error("prune kept studies", "err", err)
		}
		for _, id := range ids {
			if err := os.RemoveAll(filepath.Join(s.studiesDir, id)); err != nil {
				s.log.Error("prune kept studies", "err", err)
			}
		}
		if len(ids) > 0 {
			s.log.Info("studies past the feedback window deleted", "results", len(ids), "keep", s.cfg.KeepStudies)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}
