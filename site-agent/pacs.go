package siteagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/concord-fl/concord/imaging"
	_ "github.com/concord-fl/concord/imaging/dimse" // dicom:// PACS URLs (DIMSE)
	"github.com/concord-fl/concord/imaging/pacs"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
	bolt "go.etcd.io/bbolt"
)

// PACSConfig configures a PACSData. cmd/site-agent converts agent.yaml's
// data.pacs section into it.
type PACSConfig struct {
	// URL picks the protocol (pacs.Open): http(s):// is DICOMweb.
	URL     string
	Options pacs.Options
	// Queries select the series to train on.
	Queries []pacs.Query
	// Labels is the labels CSV (pacs.LoadLabels); Classes its class names.
	Labels  string
	Classes []string
	// SEGLabels, instead of Labels, derives labels from the DICOM SEG
	// objects in the same studies (segLabels says how).
	SEGLabels bool
	// SRLabels, instead of Labels, derives each study's class from its
	// structured reports (srLabels says how).
	SRLabels *SRLabelConfig
	// StateDir is the agent's state folder: the intake's records go in
	// pacs.db there, the cache in CacheDir (default StateDir/pacs-cache).
	StateDir   string
	CacheDir   string
	CacheBytes int64
	// Workers is how many series are retrieved at once.
	Workers int
	// Refresh is how long a load's queries stand: a job's data load within
	// it of the last complete intake asks the PACS nothing (default 1h).
	Refresh       time.Duration
	AllowBurnedIn bool
	Logger        *slog.Logger
}

// PACSData is a DataSource over a hospital's PACS. Each Dataset call
// first brings in what the queries find and the state does not record
// (pacs.Intake), then runs every labelled instance through the job's
// pipeline. An instance that cannot be decoded, or has no label, is
// skipped and counted by reason, never fatal. Decoded tensors are kept
// per pipeline while no new instance arrives.
type PACSData struct {
	intake        *pacs.Intake
	src           pacs.Source
	db            *bolt.DB
	labels        *pacs.Labels // nil: labels from segmentations or reports
	srRule        *srRule      // labels from structured reports
	allowBurnedIn bool
	refresh       time.Duration
	log           *slog.Logger
	now           func() time.Time

	mu       sync.Mutex
	lastSync time.Time // of the last complete intake
	cache    map[string]learning.Dataset
	// Rejected counts, by reason, the instances the last load skipped.
	Rejected map[string]int
}

// OpenPACS opens the PACS, the labels and the intake's state.
func OpenPACS(cfg PACSConfig) (*PACSData, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("pacs data source: no state folder")
	}
	labels, rule, queries, err := labelSource(cfg)
	if err != nil {
		return nil, err
	}
	if labels == nil && rule == nil && !cfg.SEGLabels {
		return nil, errors.New("pacs data source: no labels: set data.pacs.labels (a CSV keyed by study or SOP instance uid), data.pacs.seg_labels or data.pacs.sr_labels")
	}
	cfg.Queries = queries
	src, err := pacs.Open(cfg.URL, cfg.Options)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		src.Close()
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	path := filepath.Join(cfg.StateDir, "pacs.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("open pacs intake state %s: %w (is another agent running on it?)", path, err)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.StateDir, "pacs-cache")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	in, err := pacs.NewIntake(pacs.IntakeConfig{Source: src, Queries: cfg.Queries, DB: db, CacheDir: cfg.CacheDir,
		CacheBytes: cfg.CacheBytes, Workers: cfg.Workers})
	if err != nil {
		db.Close()
		src.Close()
		return nil, err
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Hour
	}
	return &PACSData{intake: in, src: src, db: db, labels: labels, srRule: rule, allowBurnedIn: cfg.AllowBurnedIn, refresh: cfg.Refresh,
		log: cfg.Logger, now: time.Now}, nil
}

// labelSource checks cfg's label source (none, a CSV, SEG or SR objects)
// and returns it with the queries that also find its objects.
func labelSource(cfg PACSConfig) (*pacs.Labels, *srRule, []pacs.Query, error) {
	sources := 0
	for _, set := range []bool{cfg.Labels != "", cfg.SEGLabels, cfg.SRLabels != nil} {
		if set {
			sources++
		}
	}
	switch {
	case sources > 1:
		return nil, nil, nil, errLabelSources
	case cfg.SEGLabels:
		return nil, nil, withModalityQueries(cfg.Queries, "SEG"), nil
	case cfg.SRLabels != nil:
		rule, err := newSRRule(*cfg.SRLabels, cfg.Classes)
		if err != nil {
			return nil, nil, nil, err
		}
		return nil, rule, withModalityQueries(cfg.Queries, "SR"), nil
	case cfg.Labels != "":
		labels, err := pacs.LoadLabels(cfg.Labels, cfg.Classes)
		if err != nil {
			return nil, nil, nil, err
		}
		return labels, nil, cfg.Queries, nil
	}
	return nil, nil, cfg.Queries, nil
}

// Close releases the PACS connections and the intake's state.
func (p *PACSData) Close() error {
	p.src.Close()
	return p.db.Close()
}

// Examples implements Counter: the instances brought in so far (labelled
// or not, before decoding).
func (p *PACSData) Examples() int {
	n, _ := p.intake.Count()
	return n
}

// Sync brings in what the queries find and the state lacks, now.
func (p *PACSData) Sync(ctx context.Context) (pacs.SyncReport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rep, err := p.intake.Sync(ctx)
	if err == nil {
		p.lastSync = p.now()
	}
	return rep, err
}

// Dataset implements DataSource.
func (p *PACSData) Dataset(ctx context.Context, spec *pb.JobSpec) (learning.Dataset, error) {
	pl := jobspec.PipelineConfig(spec)
	if err := pl.Validate(); err != nil {
		return learning.Dataset{}, permanent(fmt.Errorf("the job's pipeline: %w", err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Every round of a job loads its data: the queries run again only
	// when the last complete intake is older than Refresh.
	var rep pacs.SyncReport
	var err error
	if p.lastSync.IsZero() || p.now().Sub(p.lastSync) >= p.refresh {
		rep, err = p.intake.Sync(ctx)
		if err == nil {
			p.lastSync = p.now()
			p.log.Info("PACS intake", "series", rep.Series, "fetched", rep.Fetched, "bytes", rep.Bytes, "broken", rep.Broken)
		}
	}
	n, cerr := p.intake.Count()
	switch {
	case cerr != nil:
		return learning.Dataset{}, cerr
	case err != nil && n == 0:
		return learning.Dataset{}, fmt.Errorf("nothing brought in from the PACS yet: %w", err)
	case err != nil:
		// What was brought in before stays usable while the PACS is away.
		p.log.Warn("the PACS intake stopped; training on what was brought in before", "instances", n, "err", err)
	}
	key := pl.Hash() + "/" + strconv.Itoa(n)
	if ds, ok := p.cache[key]; ok {
		return ds, checkShape(ds, spec)
	}
	rejected := map[string]int{}
	for k, v := range rep.Broken {
		rejected[k] += v
	}
	ds := newDataset(pl)
	// With labels from segmentations or reports, an image's label is known
	// only once every instance was read: images wait in held.
	type heldImage struct {
		study, sop string
		px         []float32
		groups     map[string]string
	}
	var held []heldImage
	var segs *segLabels
	var srs *srLabels
	switch {
	case p.srRule != nil:
		srs = p.srRule.newLoad()
	case p.labels == nil:
		segs = newSEGLabels()
	}
	_, err = p.intake.Each(ctx, func(f pacs.Fetched, part10 []byte) error {
		label := 0
		if p.labels != nil {
			var ok bool
			if label, ok = p.labels.Label(f.StudyInstanceUID, f.SOPInstanceUID); !ok {
				rejected["no label in the labels file"]++
				return ctx.Err()
			}
		}
		im, err := imaging.Read(part10, imaging.DefaultLimits)
		if srs != nil && errors.Is(err, imaging.ErrNoPixelData) {
			if doc, perr := imaging.Parse(part10, imaging.DefaultLimits); perr == nil && imaging.IsStructuredReport(doc.Data) {
				srs.add(f.StudyInstanceUID, doc.Data)
				return ctx.Err()
			}
		}
		if err != nil {
			rejected[imaging.Reason(err)]++
			return ctx.Err()
		}
		if segs != nil && imaging.IsSegmentation(im) {
			if err := segs.add(f.StudyInstanceUID, im); err != nil {
				rejected["segmentation: "+imaging.Reason(err)]++
			}
			return ctx.Err()
		}
		px, reason := standardiseImage(im, pl, p.allowBurnedIn)
		if reason != "" {
			rejected[reason]++
			return ctx.Err()
		}
		if segs != nil || srs != nil {
			held = append(held, heldImage{f.StudyInstanceUID, f.SOPInstanceUID, px, im.Groups()})
		} else {
			addExample(&ds, px, label, im.Groups())
		}
		return ctx.Err()
	})
	if err != nil {
		return learning.Dataset{}, err
	}
	for _, h := range held {
		var label int
		if srs != nil {
			var reason string
			if label, reason = srs.label(h.study); reason != "" {
				rejected[reason]++
				continue
			}
		} else {
			var ok bool
			if label, ok = segs.label(h.study, h.sop); !ok {
				rejected["no segmentation in its study"]++
				continue
			}
		}
		addExample(&ds, h.px, label, h.groups)
	}
	p.Rejected = rejected
	if len(rejected) > 0 {
		p.log.Warn("some PACS instances were skipped", "decoded", ds.N, "rejected", rejected)
	}
	if ds.N == 0 {
		return learning.Dataset{}, fmt.Errorf("none of the %d instances brought in from the PACS is usable (%v): check data.pacs.queries and the labels file", n, rejected)
	}
	p.cache = map[string]learning.Dataset{key: ds}
	return ds, checkShape(ds, spec)
}
