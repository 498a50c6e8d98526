package jobspec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/concord-fl/concord/aggregation"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Limits are the bounds of a job that the coordinator's operator may
// change (coordinator.yaml, limits.*). A zero field means its default.
type Limits struct {
	// MaxModelParams bounds the model's parameter count.
	MaxModelParams uint64
	// MaxSites bounds min_sites, privacy.threshold and the length of each of
	// sites and validation_sites.
	MaxSites int
	// MaxRounds bounds rounds.
	MaxRounds uint32
	// MaxRoundDeadline bounds round_deadline.
	MaxRoundDeadline time.Duration
	// MaxTrainingBytes bounds the memory training the model takes at the
	// job's batch size (learning.Cost.TrainingBytes).
	MaxTrainingBytes int64
	// MaxFLOPsPerExample bounds the forward FLOPs of one example.
	MaxFLOPsPerExample int64
}

// DefaultLimits returns the limits Validate applies; the package comment
// says why each is what it is.
func DefaultLimits() Limits {
	return Limits{MaxModelParams: 50_000_000, MaxSites: 256, MaxRounds: 10_000, MaxRoundDeadline: 7 * 24 * time.Hour,
		MaxTrainingBytes: 64 << 30, MaxFLOPsPerExample: 100e9}
}

// WithDefaults fills every zero field with DefaultLimits' value.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxModelParams == 0 {
		l.MaxModelParams = d.MaxModelParams
	}
	if l.MaxSites <= 0 {
		l.MaxSites = d.MaxSites
	}
	if l.MaxRounds == 0 {
		l.MaxRounds = d.MaxRounds
	}
	if l.MaxRoundDeadline <= 0 {
		l.MaxRoundDeadline = d.MaxRoundDeadline
	}
	if l.MaxTrainingBytes <= 0 {
		l.MaxTrainingBytes = d.MaxTrainingBytes
	}
	if l.MaxFLOPsPerExample <= 0 {
		l.MaxFLOPsPerExample = d.MaxFLOPsPerExample
	}
	return l
}

// Bounds of single fields that do not depend on the coordinator's size and
// so are not Limits.
const (
	maxNameBytes   = 128  // name
	maxTextBytes   = 2048 // purpose, legal_basis
	maxTokenBytes  = 64   // he_params and the pipeline's strings
	maxClasses     = 1000
	maxBaseWidth   = 1024 // what package learning builds; MaxModelParams bounds it in practice
	maxLocalEpochs = 100
	maxLocalSteps  = 100_000
	maxBatchSize   = 1024
	maxLR          = 10 // learning_rate and server_lr
	maxClipNorm    = 1e6
	maxProxMu      = 10
	maxTau         = 1
	minDeadline    = time.Second
	maxQuoted      = 64 // bytes of an offending string quoted back in an error
)

// Validate is ValidateWithLimits with DefaultLimits.
func Validate(s *pb.JobSpec) error { return ValidateWithLimits(s, DefaultLimits()) }

// ValidateWithLimits reports everything wrong with a spec after Defaults,
// at once, each problem naming the field by its job-file name and the rule
// it breaks. It allocates nothing in proportion to the model: the model's
// size is computed, not built, and only once its fields are in range.
func ValidateWithLimits(s *pb.JobSpec, lim Limits) error {
	if s == nil || s.Model == nil || s.Training == nil || s.Privacy == nil || s.Pipeline == nil || s.Aggregation == nil {
		return errors.New("job spec is incomplete: apply defaults before validating")
	}
	lim = lim.WithDefaults()
	v := &validator{lim: lim}
	v.name(s.Name)
	v.text("purpose", s.Purpose)
	v.text("legal_basis", s.LegalBasis)
	v.model(s.Model)
	v.rounds(s)
	v.aggregation(s)
	v.training(s)
	v.privacy(s)
	v.sites(s)
	v.validation(s)
	v.customJob(s)
	v.pipeline(s)
	v.tuning(s)
	if len(v.errs) == 0 {
		v.cost(s) // the cost of a model with a bad field, or at a bad batch size, means nothing
	}
	return errors.Join(v.errs...)
}

type validator struct {
	lim  Limits
	errs []error
}

func (v *validator) bad(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

// uintIn checks lo <= x <= hi and says which end was crossed.
func (v *validator) uintIn(field string, x, lo, hi uint64) bool {
	switch {
	case x < lo:
		v.bad("%s is %d: at least %d", field, x, lo)
	case x > hi:
		v.bad("%s is %d: at most %d", field, x, hi)
	default:
		return true
	}
	return false
}

// span is a real interval; open ends exclude their bound.
type span struct {
	lo, hi         float64
	loOpen, hiOpen bool
}

func (r span) String() string {
	l, h := "[", "]"
	if r.loOpen {
		l = "("
	}
	if r.hiOpen {
		h = ")"
	}
	return l + strconv.FormatFloat(r.lo, 'g', -1, 64) + ", " + strconv.FormatFloat(r.hi, 'g', -1, 64) + h
}

func (r span) holds(x float64) bool {
	return !math.IsNaN(x) && !math.IsInf(x, 0) &&
		(x > r.lo || !r.loOpen && x == r.lo) && (x < r.hi || !r.hiOpen && x == r.hi)
}

func (v *validator) floatIn(field string, x float64, r span) bool {
	if r.holds(x) {
		return true
	}
	v.bad("%s is %v: it must be a finite number in %v", field, x, r)
	return false
}

// oneOf checks a string against its allowed values.
func (v *validator) oneOf(field, x string, allowed ...string) bool {
	for _, a := range allowed {
		if x == a {
			return true
		}
	}
	v.bad("%s is %s: use %s", field, quote(x), orList(allowed))
	return false
}

func orList(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	out := ""
	for i, x := range xs {
		switch {
		case i == len(xs)-1:
			out += " or " + x
		case i > 0:
			out += ", " + x
		default:
			out = x
		}
	}
	return out
}

// quote quotes at most maxQuoted bytes of s, so that a hostile spec cannot
// make its error (and the logs and events that carry it) arbitrarily large.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// text bounds a free-text field a report shows (purpose, legal_basis).
func (v *validator) text(field, t string) {
	switch {
	case len(t) > maxTextBytes:
		v.bad("%s is %d bytes: at most %d", field, len(t), maxTextBytes)
	case !utf8.ValidString(t):
		v.bad("%s is not valid UTF-8", field)
	default:
		for _, r := range t {
			if !unicode.IsPrint(r) && r != '\n' {
				v.bad("%s: only printable characters and line breaks", field)
				break
			}
		}
	}
}

func (v *validator) name(n string) {
	switch {
	case len(n) > maxNameBytes:
		v.bad("name %s is %d bytes: at most %d", quote(n), len(n), maxNameBytes)
	case !utf8.ValidString(n):
		v.bad("name %s is not valid UTF-8", quote(n))
	default:
		for _, r := range n {
			if !unicode.IsPrint(r) {
				v.bad("name %s: only printable characters, no line breaks or control characters", quote(n))
				break
			}
		}
	}
}

func (v *validator) model(m *pb.ModelSpec) {
	ok := v.oneOf("model.arch", m.Arch, "cnn", ArchUNet, ArchGraph, ArchResNet18, ArchResNet34, ArchCustom)
	if m.Channels != 1 && m.Channels != 3 {
		v.bad("model.channels is %d: use 1 (grey) or 3 (RGB)", m.Channels)
		ok = false
	}
	if len(m.Layers) != 0 && m.Arch != ArchGraph {
		v.bad("model.layers is set for arch %s: layers are declared for arch graph only; remove them or use arch graph", quote(m.Arch))
		ok = false
	}
	if m.Arch != ArchCustom {
		ok = v.customFieldsAbsent(m) && ok
	}
	switch m.Arch {
	case ArchCustom:
		ok = v.customModel(m) && ok
	case ArchGraph, ArchResNet18, ArchResNet34:
		ok = v.graphModel(m) && ok
	case ArchUNet:
		ok = v.sides(m) && ok
		ok = v.unetModel(m) && ok
	default:
		if m.Arch == "cnn" {
			ok = v.oneOf("model.norm", m.Norm, "group", "none") && ok
		}
		ok = v.sides(m) && ok
		ok = v.uintIn("model.classes", uint64(m.Classes), 2, maxClasses) && ok
	}
	if !graphArch(m.Arch) && m.Arch != ArchCustom {
		ok = v.uintIn("model.base_width", uint64(m.BaseWidth), 1, maxBaseWidth) && ok
	}
	if !ok {
		return // the size of a model with a bad field means nothing
	}
	n, err := learning.ParamCount(ModelSpec(&pb.JobSpec{Model: m}))
	switch {
	case err != nil:
		v.bad("model: %w", err)
	case n > v.lim.MaxModelParams:
		v.bad("model has %d parameters (model.base_width %d, model.classes %d): at most %d; make base_width or classes smaller, "+
			"or ask the coordinator's operator to raise limits.max_model_params in coordinator.yaml", n, m.BaseWidth, m.Classes, v.lim.MaxModelParams)
	}
	if seg, k, err := ModelSpec(&pb.JobSpec{Model: m}).Segments(); err == nil && seg && k > 1 {
		v.bad("model.layers: the last layer outputs %d masks per image; a federated segmentation job trains one foreground "+
			"against the sites' binary masks: end with one output channel", k)
	}
}

// Segments reports whether the job's model segments (the unet, or a
// declared graph whose output is a mask) rather than classifies; false for
// a model that does not build.
func Segments(s *pb.JobSpec) bool {
	seg, _, err := ModelSpec(s).Segments()
	return err == nil && seg
}

// cost checks what training the model asks of a machine at the job's batch
// size against the coordinator's limits (sites check their own).
func (v *validator) cost(s *pb.JobSpec) {
	c, err := ModelCost(s)
	if err != nil {
		v.bad("model: %w", err)
		return
	}
	keys := map[string]string{"training_bytes": "limits.max_training_memory", "flops_per_example": "limits.max_gflops_per_example"}
	lim := learning.Limits{MaxTrainingBytes: v.lim.MaxTrainingBytes, MaxFLOPsPerExample: v.lim.MaxFLOPsPerExample}
	for _, x := range lim.Exceeded(c) {
		v.bad("model %s: %s; make the model or training.batch_size smaller, or ask the coordinator's operator to raise %s in coordinator.yaml",
			s.Model.Arch, x, keys[x.Limit])
	}
}

// ModelCost is what training the job's model asks of a site's machine at
// the job's batch size, computed from the spec alone.
func ModelCost(s *pb.JobSpec) (learning.Cost, error) {
	return ModelSpec(s).Cost(int(s.GetTraining().GetBatchSize()))
}

// sides checks the input size of the cnn and the unet.
func (v *validator) sides(m *pb.ModelSpec) bool {
	ok := true
	for _, side := range []struct {
		field string
		x     uint32
	}{{"model.height", m.Height}, {"model.width", m.Width}} {
		if side.x < 28 || side.x > 224 || side.x%4 != 0 {
			v.bad("%s is %d: a multiple of 4 between 28 and 224", side.field, side.x)
			ok = false
		}
	}
	return ok
}

func (v *validator) rounds(s *pb.JobSpec) {
	v.uintIn("rounds", uint64(s.Rounds), 1, uint64(v.lim.MaxRounds))
	v.uintIn("min_sites", uint64(s.MinSites), 1, uint64(v.lim.MaxSites))
	maxDeadline := v.lim.MaxRoundDeadline.Seconds()
	deadline := v.floatIn("round_deadline (seconds)", s.RoundDeadlineSeconds, span{lo: minDeadline.Seconds(), hi: maxDeadline})
	cutoff := v.floatIn("straggler_cutoff (seconds)", s.StragglerCutoffSeconds, span{lo: 0, hi: maxDeadline})
	if deadline && cutoff && s.StragglerCutoffSeconds > s.RoundDeadlineSeconds {
		v.bad("straggler_cutoff (%gs) must not exceed round_deadline (%gs)", s.StragglerCutoffSeconds, s.RoundDeadlineSeconds)
	}
}

func (v *validator) aggregation(s *pb.JobSpec) {
	a := s.Aggregation
	strategies := []string{aggregation.StrategyFedAvg, aggregation.StrategyFedProx, aggregation.StrategyFedAdam, aggregation.StrategyFedYogi,
		aggregation.StrategyFedAdagrad, aggregation.StrategyMedian, aggregation.StrategyTrimmedMean}
	if !v.oneOf("aggregation.strategy", a.Strategy, strategies...) {
		return
	}
	adaptive := a.Strategy == aggregation.StrategyFedAdam || a.Strategy == aggregation.StrategyFedYogi || a.Strategy == aggregation.StrategyFedAdagrad
	params := []struct {
		field string
		x     float64
		used  bool // the strategy reads it; otherwise it must stay unset
		r     span
		who   string
	}{
		{"aggregation.server_lr", a.ServerLr, adaptive, span{lo: 0, hi: maxLR, loOpen: true}, "fedadam, fedyogi and fedadagrad"},
		{"aggregation.beta1", a.Beta1, adaptive, span{lo: 0, hi: 1, hiOpen: true}, "fedadam, fedyogi and fedadagrad"},
		{"aggregation.beta2", a.Beta2, adaptive && a.Strategy != aggregation.StrategyFedAdagrad, span{lo: 0, hi: 1, hiOpen: true}, "fedadam and fedyogi"},
		{"aggregation.tau", a.Tau, adaptive, span{lo: 0, hi: maxTau, loOpen: true}, "fedadam, fedyogi and fedadagrad"},
		{"aggregation.trim_fraction", a.TrimFraction, a.Strategy == aggregation.StrategyTrimmedMean, span{lo: 0, hi: 0.5, loOpen: true, hiOpen: true}, "trimmed-mean"},
		{"aggregation.prox_mu", a.ProxMu, a.Strategy == aggregation.StrategyFedProx, span{lo: 0, hi: maxProxMu, loOpen: true}, "fedprox"},
	}
	ok := true
	for _, p := range params {
		switch {
		case p.used:
			ok = v.floatIn(p.field, p.x, p.r) && ok
		case p.x != 0:
			v.bad("%s is %v but strategy %s does not use it (only %s do): remove it", p.field, p.x, a.Strategy, p.who)
			ok = false
		}
	}
	if ok {
		// The aggregation package's own rules, should they ever be stricter.
		if err := AggregationConfig(s).Validate(); err != nil {
			v.bad("aggregation: %w", err)
		}
	}
}

func (v *validator) training(s *pb.JobSpec) {
	t := s.Training
	v.uintIn("training.local_epochs", uint64(t.LocalEpochs), 0, maxLocalEpochs)
	v.uintIn("training.local_steps", uint64(t.LocalSteps), 0, maxLocalSteps)
	switch {
	case t.LocalEpochs == 0 && t.LocalSteps == 0:
		v.bad("training.local_epochs and training.local_steps are both 0: set one of them")
	case t.LocalEpochs != 0 && t.LocalSteps != 0:
		v.bad("training.local_epochs is %d and training.local_steps is %d: set one of them (local_steps would override local_epochs)", t.LocalEpochs, t.LocalSteps)
	}
	v.uintIn("training.batch_size", uint64(t.BatchSize), 1, maxBatchSize)
	v.oneOf("training.optimizer", t.Optimizer, "sgd", "adam")
	v.floatIn("training.learning_rate", t.LearningRate, span{lo: 0, hi: maxLR, loOpen: true})
	switch {
	case t.Optimizer == "sgd":
		v.floatIn("training.momentum", t.Momentum, span{lo: 0, hi: 1, hiOpen: true})
	case t.Momentum != 0:
		v.bad("training.momentum is %v but optimizer %s does not use it (only sgd does): remove it", t.Momentum, quote(t.Optimizer))
	}
	v.floatIn("training.clip_norm", t.ClipNorm, span{lo: 0, hi: maxClipNorm})
	if v.oneOf("training.class_weighting", t.ClassWeighting, "none", "balanced") && Segments(s) {
		v.unetTraining(t)
	}
}

func (v *validator) privacy(s *pb.JobSpec) {
	p := s.Privacy
	v.dp(s)
	if !v.oneOf("privacy.secure_aggregation", p.SecureAggregation, "mhe", "none") {
		return
	}
	if p.SecureAggregation == "none" {
		if p.Threshold != 0 {
			v.bad("privacy.threshold is %d but secure_aggregation is none: remove it, or use secure_aggregation mhe", p.Threshold)
		}
		if p.HeParams != "" {
			v.bad("privacy.he_params is %s but secure_aggregation is none: remove it, or use secure_aggregation mhe", quote(p.HeParams))
		}
		return
	}
	if AggregationConfig(s).Robust() {
		v.bad("aggregation.strategy %s needs every site's update in the clear; it cannot run with secure_aggregation mhe "+
			"(use fedavg, fedprox, fedadam, fedyogi or fedadagrad, or set secure_aggregation: none explicitly)", quote(s.Aggregation.Strategy))
	}
	switch {
	case p.Threshold == 1:
		v.bad("privacy.threshold 1 would let any single site decrypt: use at least 2, or 0 for all key holders")
	case p.Threshold > 0 && s.MinSites < p.Threshold:
		v.bad("privacy.threshold %d exceeds min_sites %d: rounds could close with fewer sites than can decrypt", p.Threshold, s.MinSites)
	}
	if len(p.HeParams) > maxTokenBytes || !isToken(p.HeParams) {
		// The coordinator looks the name up among the parameter sets it has.
		v.bad("privacy.he_params is %s: a parameter set name such as n12-q60 (lower-case letters, digits and '-', at most %d bytes)",
			quote(p.HeParams), maxTokenBytes)
	}
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (v *validator) sites(s *pb.JobSpec) {
	seen := map[string]string{}
	for _, list := range []struct {
		field string
		names []string
	}{{"sites", s.Sites}, {"validation_sites", s.ValidationSites}} {
		if len(list.names) > v.lim.MaxSites {
			v.bad("%s lists %d sites: at most %d", list.field, len(list.names), v.lim.MaxSites)
			continue
		}
		for i, n := range list.names {
			if pki.ValidateName(n) != nil {
				v.bad("%s[%d] is %s: a site name is 1 to 63 lower-case letters, digits and '-', not starting or ending with '-', "+
					"as on the site's certificate", list.field, i, quote(n))
				continue
			}
			switch prev, dup := seen[n]; {
			case dup && prev == list.field:
				v.bad("%s lists site %s twice", list.field, quote(n))
			case dup:
				v.bad("site %s is listed both for training and for validation", quote(n))
			}
			seen[n] = list.field
		}
	}
	if len(s.Sites) > 0 && len(s.Sites) < int(s.MinSites) {
		v.bad("%d sites listed but min_sites is %d", len(s.Sites), s.MinSites)
	}
	// Under secure aggregation validation sites hold key shares too: the
	// key holders together must stay within the encryption's bounds.
	if n := len(s.Sites) + len(s.ValidationSites); s.GetPrivacy().GetSecureAggregation() == "mhe" && len(s.Sites) <= v.lim.MaxSites &&
		len(s.ValidationSites) <= v.lim.MaxSites && n > v.lim.MaxSites {
		v.bad("%d training and validation sites hold key shares under secure aggregation: at most %d", n, v.lim.MaxSites)
	}
}

func (v *validator) pipeline(s *pb.JobSpec) {
	pl, m := s.Pipeline, s.Model
	if pl.Width != m.Width || pl.Height != m.Height || pl.Channels != m.Channels {
		v.bad("pipeline output %dx%dx%d (pipeline.channels x height x width) must match the model input %dx%dx%d",
			pl.Channels, pl.Height, pl.Width, m.Channels, m.Height, m.Width)
		return // the model's checks bound the sizes
	}
	ok := true
	for _, f := range []struct{ field, x string }{
		{"pipeline.resample", pl.Resample}, {"pipeline.normalise", pl.Normalise},
		{"pipeline.denoise", pl.Denoise}, {"pipeline.contrast", pl.Contrast},
	} {
		if len(f.x) > maxTokenBytes {
			v.bad("%s is %s: at most %d bytes", f.field, quote(f.x), maxTokenBytes)
			ok = false
		}
	}
	if ok {
		// Strings are short now, so the imaging package's errors, which quote
		// them, stay short too.
		if err := PipelineConfig(s).Validate(); err != nil {
			v.bad("pipeline: %w", err)
		}
	}
}
