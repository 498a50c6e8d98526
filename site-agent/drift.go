package siteagent

import (
	"sync"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// A model is only as good as the match between the images it learnt from
// and the images it is shown. A site records a baseline of the data it
// last trained (or validated) on, then watches the images arriving at the
// hospital and tells the coordinator, with the population stability index
// per feature, whether they still look alike: a new scanner, a new
// protocol or another patient mix shows up here before it shows up as
// missed findings. Only the indices leave the site; the baseline stays in
// the agent's state.

// DriftConfig is the watch over arriving images.
type DriftConfig struct {
	// Dir holds the arriving DICOM files, in any layout and without labels
	// (what the serving component writes). Empty: no drift watch.
	Dir string
	// Interval between checks (default one hour); one also runs at start
	// and whenever a new baseline is recorded.
	Interval time.Duration
	// MinExamples is the fewest readable images a report is made from
	// (default 30): with fewer, PSI mostly measures noise.
	MinExamples int
}

func (c DriftConfig) withDefaults() DriftConfig {
	if c.Interval <= 0 {
		c.Interval = time.Hour
	}
	if c.MinExamples <= 0 {
		c.MinExamples = 30
	}
	return c
}

// Drift features: the keys of DriftReport.psi.
const (
	FeatureIntensity    = "intensity"
	FeatureSex          = "sex"
	FeatureAgeBand      = "age_band"
	FeatureManufacturer = "manufacturer"
	FeatureModel        = "model"
)

// headerFeatures are the categorical features, read from de-identified,
// coarse header fields only.
var headerFeatures = []string{FeatureSex, FeatureAgeBand, FeatureManufacturer, FeatureModel}

// groupKeys are the names a dataset's subgroup fields may carry each
// feature under: validation calls the age band "age".
var groupKeys = map[string][]string{
	FeatureSex: {"sex"}, FeatureAgeBand: {"age", "age_band"},
	FeatureManufacturer: {"manufacturer"}, FeatureModel: {"model"},
}

const (
	// pixelsPerImage is about how many standardised pixels of each image go
	// into the intensity histogram, on a fixed stride. All pixels of every
	// image would cost memory for nothing; one mean per image would leave
	// 30 values for 10 bins, where PSI measures mostly noise (about 0.3 for
	// two samples of the same distribution). A few hundred pixels per image
	// see the shape of the intensity distribution (contrast, exposure,
	// inversion) after the job's own standardisation.
	pixelsPerImage = 256
	// maxCategories bounds a feature's table; rarer values count as "other".
	// Device names are free text: a misconfigured scanner must not grow
	// the state without bound.
	maxCategories = 32
	otherCategory = "other"
)

// Baseline describes the data a job was trained or validated on at this
// site: statistics only, kept in the agent's state, never sent.
type Baseline struct {
	Job          string           `json:"job"`
	PipelineHash string           `json:"pipeline_hash"`
	Pipeline     imaging.Pipeline `json:"pipeline"`
	Examples     int              `json:"examples"`
	// Intensity is the histogram of sampled standardised pixels over the
	// deciles of the baseline's own sample.
	Intensity evaluation.Histogram `json:"intensity"`
	// Categories holds a frequency table per header feature, for the
	// features the training data had (none when it came without headers).
	Categories map[string]evaluation.Frequencies `json:"categories,omitempty"`
	// Predictions is the histogram of the kept model's scores on the
	// baseline data (driftpred.go); nil when no model was kept.
	Predictions *evaluation.Histogram `json:"predictions,omitempty"`
	Recorded    time.Time             `json:"recorded"`
}

// baselineFrom computes a baseline from a standardised dataset and, when
// given, its subgroup values by field (index-aligned with the examples; a
// field of the wrong length is left out). Nil groups give a baseline of
// intensity alone.
func baselineFrom(ds learning.Dataset, groups map[string][]string) Baseline {
	per := ds.C * ds.H * ds.W
	n := ds.N
	if per > 0 {
		n = min(n, len(ds.X)/per)
	}
	// At most maxDriftFiles images, evenly spread: the same bound as a check,
	// and a training round of a large site is not slowed by its baseline.
	take := min(n, maxDriftFiles)
	var sample []float64
	for k := 0; k < take && per > 0; k++ {
		i := k * n / take
		sample = sampleIntensity(ds.X[i*per:(i+1)*per], sample)
	}
	h := evaluation.NewHistogram(evaluation.QuantileEdges(sample, evaluation.DefaultBins))
	for _, x := range sample {
		h.Add(x)
	}
	b := Baseline{Examples: ds.N, Intensity: h}
	for _, f := range headerFeatures {
		for _, k := range groupKeys[f] {
			v, ok := groups[k]
			if !ok || len(v) != ds.N {
				continue
			}
			t := evaluation.Frequencies{}
			for _, x := range v {
				if f == FeatureManufacturer || f == FeatureModel {
					x = imaging.DeviceName(x) // as the arriving files' names are kept
				}
				addBounded(t, x)
			}
			if b.Categories == nil {
				b.Categories = map[string]evaluation.Frequencies{}
			}
			b.Categories[f] = t
			break
		}
	}
	return b
}

// sampleIntensity appends about pixelsPerImage of px, on a fixed stride.
func sampleIntensity(px []float32, dst []float64) []float64 {
	step := max(1, len(px)/pixelsPerImage)
	for i := 0; i < len(px); i += step {
		dst = append(dst, float64(px[i]))
	}
	return dst
}

func addBounded(t evaluation.Frequencies, v string) {
	if v == "" {
		v = evaluation.Unknown
	}
	if _, ok := t[v]; !ok && len(t) >= maxCategories {
		v = otherCategory
	}
	t[v]++
}

// datasetGroups returns a dataset's subgroup values by field (sex, age,
// manufacturer, model, index-aligned with the examples), nil when the data
// source supplies none: the baseline then has intensity only, and the
// header features are not compared. This is the one place that reads
// them from a dataset.
func datasetGroups(ds learning.Dataset) map[string][]string { return ds.Groups }

// headerGroups reads the header features of one image, coded as the
// validation subgroups are (imaging.Image.Groups), under the drift
// features' names, so that a baseline computed from a dataset's groups and
// a window read from files count the same values. "" is unknown.
func headerGroups(im *imaging.Image) map[string]string {
	g := im.Groups()
	return map[string]string{FeatureSex: g[imaging.GroupSex], FeatureAgeBand: g[imaging.GroupAge],
		FeatureManufacturer: g[imaging.GroupManufacturer], FeatureModel: g[imaging.GroupModel]}
}

// recordBaseline records the data of a job this site has just trained or
// validated on as the drift baseline, replacing the previous one, and has
// the drift watch compare against it at once. With model (the weights the
// site received for the job's final round), the model's scores on the
// data are recorded too, and the model kept to score arriving images. A
// failure is logged, never returned: drift monitoring must not fail the
// task that fed it.
func (a *Agent) recordBaseline(job string, spec *pb.JobSpec, ds learning.Dataset, model []float32) {
	if ds.N == 0 {
		return
	}
	pl := jobspec.PipelineConfig(spec)
	b := baselineFrom(ds, datasetGroups(ds))
	b.Job, b.Pipeline, b.PipelineHash, b.Recorded = job, pl, pl.Hash(), time.Now().UTC()
	var dm *driftModel
	if model != nil {
		dm, b.Predictions = predictionBaseline(spec, model, ds)
	}
	prev, _ := a.st.baseline()
	if err := a.st.putBaseline(&b, dm); err != nil {
		a.log.Warn("drift baseline not recorded; the previous one (if any) stays", "job", bounded(job, maxIDLen), "err", err)
		return
	}
	// Every round of a job records the same data again; only a new job,
	// pipeline or data set is worth an immediate check of the arriving images.
	if prev == nil || prev.Job != b.Job || prev.PipelineHash != b.PipelineHash || prev.Examples != b.Examples || b.Predictions != nil {
		a.log.Info("drift baseline recorded", "job", bounded(job, maxIDLen), "examples", b.Examples)
		a.drift.wakeUp()
	}
}

// driftLoop is what the drift watch shares with the task stream: the
// latest report, kept so that it is sent again after a reconnect.
type driftLoop struct {
	mu    sync.Mutex
	last  *pb.DriftReport
	ready chan struct{} // a report to send
	wake  chan struct{} // a new baseline: check now
}

func newDriftLoop() *driftLoop {
	return &driftLoop{ready: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

func (d *driftLoop) latest() *pb.DriftReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// publish keeps r as the latest report and wakes the session to send it.
func (d *driftLoop) publish(r *pb.DriftReport) {
	d.mu.Lock()
	d.last = r
	d.mu.Unlock()
	d.signal()
}

// signal tells the session a report is waiting; a new session calls it
// to send the latest again.
func (d *driftLoop) signal() {
	select {
	case d.ready <- struct{}{}:
	default:
	}
}

func (d *driftLoop) wakeUp() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func driftMessage(r *pb.DriftReport) *pb.AgentMessage {
	return &pb.AgentMessage{Msg: &pb.AgentMessage_Drift{Drift: r}}
}
