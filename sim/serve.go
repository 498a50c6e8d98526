package sim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/serving"
	"github.com/concord-fl/concord/serving/fhirr4"
	"github.com/concord-fl/concord/sim/synth"
)

// ServeSummary is what --serve adds to the summary: one hospital serving
// the published version on generated studies sent by STOW-RS.
type ServeSummary struct {
	Served        int     `json:"served"`
	FHIRDelivered int     `json:"fhir_delivered"`
	ServeP50Ms    float64 `json:"serve_p50_ms"`
	ServeP99Ms    float64 `json:"serve_p99_ms"`
	ServeError    string  `json:"serve_error,omitempty"`
}

// studyMaker writes n generated studies under dir, one DICOM file each,
// and returns their paths.
type studyMaker func(dir string, n int, seed int64) ([]string, error)

// chestStudies are generated chest X-rays, for a classifier.
func chestStudies(dir string, n int, seed int64) ([]string, error) {
	h := synth.Hospitals(1, seed+77)[0]
	h.N = n
	man, err := synth.WriteDICOM(dir, h, seed+7000)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range man.Entries {
		out = append(out, filepath.Join(man.Dir, filepath.FromSlash(e.Path)))
	}
	return out, nil
}

// ctStudies are generated CT slices, each its own study, for a
// segmentation model (whose results are DICOM SEGs).
func ctStudies(dir string, n int, seed int64) ([]string, error) {
	h := synth.CTSites(1, seed+77)[0]
	h.Patients, h.SlicesPer = (n+slicesPerPatient-1)/slicesPerPatient, slicesPerPatient
	if _, err := synth.WriteCT(dir, h, seed+7000); err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, h.Slug(), "*.dcm"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if len(files) < n {
		return nil, fmt.Errorf("generated %d CT slices, want %d", len(files), n)
	}
	return files[:n], nil
}

// serveStudies installs the published version (out/model-card, verified
// against out/audit-trust.txt) at the first hospital as `concordctl models
// download` would, approves it, serves it and sends the cfg.Serve studies
// that studies generates through STOW-RS, then waits for every result to reach the FHIR
// endpoint.
func serveStudies(ctx context.Context, cfg Config, version string, site string, studies studyMaker, sum *ServeSummary) error {
	if version == "" {
		return errors.New("no version was published: nothing to serve")
	}
	trust, err := audit.ReadTrustFile(filepath.Join(cfg.Out, "audit-trust.txt"))
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.Out, "serve", site)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	models := filepath.Join(dir, "models")
	if err := os.CopyFS(filepath.Join(models, version), os.DirFS(filepath.Join(cfg.Out, "model-card"))); err != nil {
		return fmt.Errorf("install %s: %w", version, err)
	}
	store, err := serving.OpenStore(filepath.Join(dir, "state"), time.Second)
	if err != nil {
		return err
	}
	defer store.Close()
	m, manifestSum, err := serving.VerifyVersion(filepath.Join(models, version), trust)
	if err != nil {
		return err
	}
	if err := store.Approve(serving.Approval{Version: version, ManifestSHA256: manifestSum, DeviceUID: m.DeviceUID, By: "concord-sim", At: time.Now()}); err != nil {
		return err
	}
	approvals, err := store.Approvals()
	if err != nil {
		return err
	}
	model, err := serving.LoadApproved(models, trust, approvals)
	if err != nil {
		return err
	}
	files, err := studies(filepath.Join(dir, "studies"), cfg.Serve, cfg.Seed)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var lat []float64
	all := make(chan struct{})
	srv, err := serving.New(serving.Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(dir, "state"), FeedbackDir: filepath.Join(dir, "feedback"),
		Classes: []string{synth.ClassNormal, synth.ClassLesion}, PatientIDSystem: "urn:concord-sim:" + site, Publisher: "concord-sim",
		Model: model, Store: store, Sender: &fhirr4.Client{Base: cfg.ServeFHIR, HTTP: &http.Client{Timeout: 30 * time.Second}},
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second, Logger: cfg.Logger.With("site", site, "serving", version),
		OnDelivered: func(_ string, arrived time.Time) {
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, float64(time.Since(arrived).Microseconds())/1000)
			if len(lat) == len(files) {
				close(all)
			}
		}})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go srv.Run(sctx)
	url := "http://" + srv.Addr().String()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		status, body, err := serving.PostSTOW(ctx, url, b)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("STOW-RS answered %d: %.300s", status, body)
		}
		sum.Served++
	}
	select {
	case <-all:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Minute):
	}
	mu.Lock()
	defer mu.Unlock()
	sum.FHIRDelivered = len(lat)
	sum.ServeP50Ms, sum.ServeP99Ms = serving.Percentile(lat, 0.5), serving.Percentile(lat, 0.99)
	fmt.Fprintf(cfg.Progress, "served %d studies at %s with %s: %d delivered to FHIR, p99 %.0f ms from arrival\n",
		sum.Served, site, version, sum.FHIRDelivered, sum.ServeP99Ms)
	return nil
}
