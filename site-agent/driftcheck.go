package siteagent

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// maxDriftFiles bounds one check: the newest files are the population the
// model meets now, and 10,000 images through the pipeline take minutes,
// not hours, on a site's CPU.
const maxDriftFiles = 10_000

// watchDrift checks the arriving images at start, every Drift.Interval and
// whenever a new baseline is recorded, until ctx ends. Without Drift.Dir
// it does nothing.
func (a *Agent) watchDrift(ctx context.Context) {
	if a.cfg.Drift.Dir == "" {
		return
	}
	t := time.NewTicker(a.cfg.Drift.Interval)
	defer t.Stop()
	for {
		a.driftOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.drift.wake:
		}
	}
}

// driftOnce runs one check against the recorded baseline (none: nothing to
// compare with yet), keeps the report and has the session send it.
func (a *Agent) driftOnce(ctx context.Context) {
	b, err := a.st.baseline()
	if err != nil || b == nil {
		if err != nil {
			a.log.Warn("drift check skipped", "err", err)
		}
		return
	}
	r, err := a.checkDrift(ctx, b)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		a.log.Warn("drift check failed; the next one may succeed", "err", err)
		return
	case r == nil:
		return
	}
	if err := a.st.putDriftReport(r); err != nil {
		a.log.Warn("drift report not stored (it is still sent)", "err", err)
	}
	a.drift.publish(r)
	level := a.log.Info
	if r.MaxPsi > evaluation.PSISignificant {
		level = a.log.Warn
	}
	level("drift checked", "baseline_job", bounded(r.BaselineJob, maxIDLen), "examples", r.Examples,
		"max_psi", r.MaxPsi, "psi", r.Psi, "feedback", r.Feedback)
}

// checkDrift reads the newest arriving images, runs each through the
// baseline job's pipeline and compares their features with the baseline.
// A file that cannot be read is skipped and counted by reason, never
// named. It returns nil (and no error) when fewer than MinExamples images
// could be read.
func (a *Agent) checkDrift(ctx context.Context, b *Baseline) (*pb.DriftReport, error) {
	dir := a.cfg.Drift.Dir
	files, err := newestFiles(ctx, dir, maxDriftFiles)
	if err != nil {
		return nil, err
	}
	pl := b.Pipeline
	if err := pl.Validate(); err != nil {
		return nil, fmt.Errorf("the baseline's pipeline: %w", err)
	}
	per := pl.Channels * pl.Height * pl.Width
	intensity := evaluation.NewHistogram(b.Intensity.Edges)
	cats := map[string]evaluation.Frequencies{}
	for f := range b.Categories {
		cats[f] = evaluation.Frequencies{}
	}
	skipped := map[string]int{}
	n := 0
	var sample []float64
	// The model's scores, in batches of predictBatch images.
	var sc *scorer
	var scores evaluation.Histogram
	batch := learning.Dataset{C: pl.Channels, H: pl.Height, W: pl.Width}
	if b.Predictions != nil {
		dm, err := a.st.driftModel()
		if err == nil {
			sc, err = newScorer(dm)
		}
		if err != nil {
			a.log.Warn("drift check: the kept model cannot score; prediction drift is left out", "err", err)
			sc = nil
		}
		scores = evaluation.NewHistogram(b.Predictions.Edges)
	}
	flush := func() error {
		if sc == nil || batch.N == 0 {
			return nil
		}
		err := sc.add(batch, &scores)
		batch.X, batch.N = batch.X[:0], 0
		return err
	}
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		im, err := imaging.ReadFile(path)
		if err != nil {
			skipped[imaging.Reason(err)]++
			continue
		}
		if im.BurnedInAnnotation {
			// Left out of training data by default, so out of the comparison.
			skipped["burned-in annotation"]++
			continue
		}
		px, err := pl.Apply(im, 0)
		if err != nil || len(px) != per {
			skipped["pipeline: "+imaging.Reason(err)]++
			continue
		}
		n++
		sample = sampleIntensity(px, sample[:0])
		for _, x := range sample {
			intensity.Add(x)
		}
		g := headerGroups(im)
		for f, t := range cats {
			addBounded(t, g[f])
		}
		if sc != nil {
			batch.X, batch.N = append(batch.X, px...), batch.N+1
			if batch.N == predictBatch {
				if err := flush(); err != nil {
					return nil, fmt.Errorf("score arriving images: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("score arriving images: %w", err)
	}
	if len(skipped) > 0 {
		a.log.Warn("drift check: some arriving files were skipped", "read", n, "skipped", skipped)
	}
	if n < a.cfg.Drift.MinExamples {
		a.log.Info("drift check: too few arriving images to compare", "read", n, "min_examples", a.cfg.Drift.MinExamples)
		return nil, nil
	}
	r := &pb.DriftReport{BaselineJob: b.Job, PipelineHash: b.PipelineHash, BaselineExamples: uint64(max(b.Examples, 0)),
		Examples: uint64(n), Psi: map[string]float64{}, UnixMillis: time.Now().UnixMilli()}
	r.Psi[FeatureIntensity] = b.Intensity.PSI(intensity)
	for f, t := range cats {
		r.Psi[f] = b.Categories[f].PSI(t)
	}
	if sc != nil {
		r.Psi[FeaturePrediction] = b.Predictions.PSI(scores)
	}
	for f, v := range r.Psi {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(r.Psi, f) // no comparison possible (an empty baseline table)
			continue
		}
		r.MaxPsi = max(r.MaxPsi, v)
	}
	if fb := a.cfg.Feedback.Dir; fb != "" {
		c, err := countFeedback(fb, b.Recorded)
		if err != nil {
			a.log.Warn("feedback folder not counted", "err", err)
		}
		r.Feedback = uint64(c)
	}
	return r, nil
}

// newestFiles lists the regular, non-hidden files below dir and returns at
// most limit of them, the most recently modified first. The walk keeps a
// heap of limit entries, so a folder of millions of files costs time, not
// memory. Errors name no path below dir.
func newestFiles(ctx context.Context, dir string, limit int) ([]string, error) {
	base := "'" + filepath.Base(filepath.Clean(dir)) + "'"
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			return nil, fmt.Errorf("the drift folder %s is a file, not a folder: fix drift.dir in agent.yaml", base)
		}
		return nil, fmt.Errorf("the drift folder %s cannot be read (%s): create it or fix drift.dir in agent.yaml", base, errKind(err))
	}
	h := &byAge{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			return nil // an unreadable sub-folder: the rest can still be compared
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil // removed since it was listed
		}
		heap.Push(h, aged{path, fi.ModTime()})
		if h.Len() > limit {
			heap.Pop(h) // the oldest
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("the drift folder %s cannot be listed (%s)", base, errKind(err))
	}
	out := make([]string, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(aged).path
	}
	return out, nil
}

type aged struct {
	path string
	mod  time.Time
}

// byAge is a min-heap by modification time: its root is the oldest file.
type byAge []aged

func (h byAge) Len() int { return len(h) }
func (h byAge) Less(i, j int) bool {
	if h[i].mod.Equal(h[j].mod) {
		return h[i].path > h[j].path // a fixed order for files written in the same instant
	}
	return h[i].mod.Before(h[j].mod)
}
func (h byAge) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *byAge) Push(x any)   { *h = append(*h, x.(aged)) }
func (h *byAge) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
