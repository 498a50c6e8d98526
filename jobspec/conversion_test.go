package jobspec

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// everyField sets every field of a job file to a value that is not its
// zero value nor its default, and distinct from the values of the fields it
// could be confused with (height 32, width 36, …). It is not a valid job:
// some settings exclude each other.
const everyField = `name: every-field
purpose: pneumonia triage research
legal_basis: GDPR Art. 9(2)(j)
model: {arch: cnn, channels: 3, height: 32, width: 36, classes: 5, base_width: 6, norm: none,
  layers: [{name: l1, op: conv, inputs: [input], out: 11, kernel: 3, stride: 2, padding: 1, dilation: 2, groups: 4, bias: false,
    eps: 0.001, slope: 0.2, p: 0.3, scale: 5}],
  code: {file: net.py, sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}, layout: [{name: fc.weight, shape: [2, 3]}]}
rounds: 7
min_sites: 3
round_deadline: 2m
straggler_cutoff: 1m30s
aggregation: {strategy: fedadam, server_lr: 0.11, beta1: 0.81, beta2: 0.91, tau: 0.012, trim_fraction: 0.21, prox_mu: 0.31}
training: {local_epochs: 2, local_steps: 9, batch_size: 8, optimizer: sgd, learning_rate: 0.05, momentum: 0.7, augment: true, clip_norm: 4.5, class_weighting: balanced}
privacy: {secure_aggregation: mhe, threshold: 4, he_params: n12-q60, level: record, example_clip: 0.7, epsilon: 1.5, delta: 1e-5, noise_multiplier: 1.1,
  update_clip: 2.5, adaptive_clip: {quantile: 0.45, lr: 0.15, count_noise: 1.7}}
validation_sites: [v1, v2]
validation: {min_auc: 0.8, min_sensitivity: 0.7, at_specificity: 0.9, max_auc_regression: 0.02, max_subgroup_gap: 0.1, min_subgroup_count: 12, receipt_deadline: 90s, min_dice: 0.5, final_only: true, score_local_models: true}
mode: federated
init_version: v2
retrain: {drift_psi: 0.25, min_feedback: 100, every: 24h, require_approval: true}
tuning: {server_lr: [0.02, 0.07], local_epochs: [4, 6], rounds: 2, eta: 4}
sites: [a, b, c]
seed: -42
pipeline: {width: 40, height: 44, channels: 1, resample: bilinear, normalise: zscore, denoise: "median:3", contrast: histeq}
`

// wireValues is what everyField must decode to, by proto field path.
var wireValues = map[string]string{
	"name":                                "every-field",
	"validation.min_auc":                  "0.8",
	"validation.min_sensitivity":          "0.7",
	"validation.at_specificity":           "0.9",
	"validation.max_auc_regression":       "0.02",
	"validation.max_subgroup_gap":         "0.1",
	"validation.min_subgroup_count":       "12",
	"validation.receipt_deadline_seconds": "90",
	"validation.min_dice":                 "0.5",
	"validation.final_only":               "true",
	"validation.score_local_models":       "true",
	"mode":                                "federated",
	"init_version":                        "v2",
	"retrain.drift_psi":                   "0.25",
	"retrain.min_feedback":                "100",
	"retrain.every_seconds":               "86400",
	"retrain.require_approval":            "true",
	"tuning.server_lr":                    "[0.02 0.07]",
	"tuning.local_epochs":                 "[4 6]",
	"tuning.rounds":                       "2",
	"tuning.eta":                          "4",
	"purpose":                             "pneumonia triage research",
	"legal_basis":                         "GDPR Art. 9(2)(j)",
	"model.arch":                          "cnn",
	"model.channels":                      "3",
	"model.height":                        "32",
	"model.width":                         "36",
	"model.classes":                       "5",
	"model.base_width":                    "6",
	"model.norm":                          "none",
	"model.layers":                        "[{name=l1 op=conv inputs=[input] out=11 kernel=3 stride=2 padding=1 dilation=2 groups=4 bias=false eps=0.001 slope=0.2 p=0.3 scale=5}]",
	"model.code_file":                     "net.py",
	"model.code_sha256":                   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"model.custom_layout":                 "[{name=fc.weight shape=[2 3]}]",
	"rounds":                              "7",
	"min_sites":                           "3",
	"round_deadline_seconds":              "120",
	"straggler_cutoff_seconds":            "90",
	"aggregation.strategy":                "fedadam",
	"aggregation.server_lr":               "0.11",
	"aggregation.beta1":                   "0.81",
	"aggregation.beta2":                   "0.91",
	"aggregation.tau":                     "0.012",
	"aggregation.trim_fraction":           "0.21",
	"aggregation.prox_mu":                 "0.31",
	"training.local_epochs":               "2",
	"training.local_steps":                "9",
	"training.batch_size":                 "8",
	"training.optimizer":                  "sgd",
	"training.learning_rate":              "0.05",
	"training.momentum":                   "0.7",
	"training.augment":                    "true",
	"training.clip_norm":                  "4.5",
	"training.class_weighting":            "balanced",
	"privacy.secure_aggregation":          "mhe",
	"privacy.threshold":                   "4",
	"privacy.he_params":                   "n12-q60",
	"privacy.epsilon":                     "1.5",
	"privacy.delta":                       "1e-05",
	"privacy.noise_multiplier":            "1.1",
	"privacy.level":                       "record",
	"privacy.example_clip":                "0.7",
	"validation_sites":                    "[v1 v2]",
	"sites":                               "[a b c]",
	"seed":                                "-42",
	"pipeline.width":                      "40",
	"pipeline.height":                     "44",
	"pipeline.channels":                   "1",
	"pipeline.resample":                   "bilinear",
	"pipeline.normalise":                  "zscore",
	"pipeline.denoise":                    "median:3",
	"pipeline.contrast":                   "histeq",
	"privacy.update_clip":                 "2.5",
	"privacy.adaptive_clip_quantile":      "0.45",
	"privacy.adaptive_clip_lr":            "0.15",
	"privacy.adaptive_clip_count_noise":   "1.7",
}

// leaves walks every field of a message type, nested messages included,
// calling f with each non-message field's path and its value in m.
func leaves(m protoreflect.Message, prefix string, f func(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value, set bool)) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		path := prefix + string(fd.Name())
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
			leaves(m.Get(fd).Message(), path+".", f)
			continue
		}
		f(path, fd, m.Get(fd), m.Has(fd))
	}
}

func show(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if fd.IsList() {
		l := v.List()
		out := make([]string, l.Len())
		for i := range out {
			if fd.Kind() == protoreflect.MessageKind {
				out[i] = showMessage(l.Get(i).Message())
				continue
			}
			out[i] = fmt.Sprint(l.Get(i).Interface())
		}
		return "[" + strings.Join(out, " ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// showMessage writes the set fields of m in field order: {name=value …}.
func showMessage(m protoreflect.Message) string {
	var parts []string
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); m.Has(fd) {
			parts = append(parts, string(fd.Name())+"="+show(fd, m.Get(fd)))
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// showLayers writes converted layers the way show writes model.layers, by
// converting them back to the wire form: equal strings mean every field
// made the round trip.
func showLayers(ls []learning.Layer) string {
	var out []string
	for _, l := range ls {
		out = append(out, showMessage((&pb.LayerSpec{Name: l.Name, Op: l.Op, Inputs: l.Inputs, Out: uint32(l.Out), Kernel: uint32(l.Kernel),
			Stride: uint32(l.Stride), Padding: uint32(l.Padding), Dilation: uint32(l.Dilation), Groups: uint32(l.Groups), Bias: l.Bias,
			Eps: l.Eps, Slope: l.Slope, P: l.P, Scale: uint32(l.Scale)}).ProtoReflect()))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// showCustom writes a converted custom layout the way show writes
// model.custom_layout.
func showCustom(ps []learning.CustomParam) string {
	var out []string
	for _, p := range ps {
		w := &pb.CustomParam{Name: p.Name}
		for _, d := range p.Shape {
			w.Shape = append(w.Shape, uint32(d))
		}
		out = append(out, showMessage(w.ProtoReflect()))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// TestDecodeEveryField: a job file with every field set decodes into a
// proto with every field set, each to its own value. A field added to the
// proto without YAML support fails here.
func TestDecodeEveryField(t *testing.T) {
	s, err := decode([]byte(everyField))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	leaves(s.ProtoReflect(), "", func(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value, set bool) {
		seen[path] = true
		if path == "model.code" {
			return // the module's bytes: ParseFile reads them from model.code.file (TestParseFileReadsCode)
		}
		want, ok := wireValues[path]
		switch {
		case !set:
			t.Errorf("%s: not set by the job file: the YAML layout (File) does not carry it", path)
		case !ok:
			t.Errorf("%s: set to %s, but the test does not know this field: add it to everyField and wireValues", path, show(fd, v))
		case show(fd, v) != want:
			t.Errorf("%s: decoded as %s, want %s", path, show(fd, v), want)
		}
	})
	for path := range wireValues {
		if !seen[path] {
			t.Errorf("%s: listed in wireValues but not a field of JobSpec", path)
		}
	}
}

// TestConversionsCarryEveryField: each field of the spec reaches the
// package type that acts on it, through this package's conversions, or is
// listed with the place that reads it directly. A new proto field fails
// here until it is converted or listed.
func TestConversionsCarryEveryField(t *testing.T) {
	s, err := decode([]byte(everyField))
	if err != nil {
		t.Fatal(err)
	}
	labels := []int{0, 1, 1, 4}
	ms, ac, tc, pl := ModelSpec(s), AggregationConfig(s), TrainConfig(s, labels), PipelineConfig(s)
	dpc, err := DPConfig(s, 100)
	if err != nil || dpc == nil {
		t.Fatalf("DPConfig: %v, %v", dpc, err)
	}
	// The site-level settings, read as a site-level job (everyField is a
	// record-level one; the two exclude each other).
	asSite := proto.Clone(s).(*pb.JobSpec)
	asSite.Privacy.Level, asSite.Privacy.Epsilon = "site", 0
	sdp, err := SiteDPConfig(asSite)
	if err != nil || sdp == nil {
		t.Fatalf("SiteDPConfig: %v, %v", sdp, err)
	}
	if sdp.NoiseMultiplier != 1.1 || sdp.MinSites != 3 || sdp.Rounds != 7 || sdp.Delta != 1e-5 {
		t.Errorf("SiteDPConfig: %+v", sdp)
	}
	carried := map[string]any{
		"model.arch":                        ms.Arch,
		"model.channels":                    ms.Channels,
		"model.height":                      ms.Height,
		"model.width":                       ms.Width,
		"model.classes":                     ms.Classes,
		"model.base_width":                  ms.BaseWidth,
		"model.norm":                        ms.Norm,
		"model.layers":                      showLayers(ms.Layers),
		"model.code_sha256":                 ms.CodeSHA256,
		"model.custom_layout":               showCustom(ms.Custom),
		"aggregation.strategy":              ac.Strategy,
		"aggregation.server_lr":             ac.ServerLR,
		"aggregation.beta1":                 ac.Beta1,
		"aggregation.beta2":                 ac.Beta2,
		"aggregation.tau":                   ac.Tau,
		"aggregation.trim_fraction":         ac.TrimFraction,
		"aggregation.prox_mu":               ac.ProxMu,
		"training.local_epochs":             tc.Epochs,
		"training.local_steps":              tc.Steps,
		"training.batch_size":               tc.BatchSize,
		"training.optimizer":                tc.Optimizer,
		"training.learning_rate":            tc.LR,
		"training.momentum":                 tc.Momentum,
		"training.augment":                  tc.Augment,
		"training.class_weighting":          map[bool]string{true: "balanced", false: "none"}[tc.ClassWeights != nil],
		"privacy.level":                     map[bool]string{true: "record"}[dpc != nil],
		"privacy.example_clip":              dpc.Clip,
		"privacy.epsilon":                   dpc.Epsilon,
		"privacy.delta":                     dpc.Delta,
		"privacy.noise_multiplier":          dpc.NoiseMultiplier,
		"privacy.update_clip":               sdp.Clip,
		"privacy.adaptive_clip_quantile":    sdp.Quantile,
		"privacy.adaptive_clip_lr":          sdp.ClipLR,
		"privacy.adaptive_clip_count_noise": sdp.CountNoise,
		"pipeline.width":                    pl.Width,
		"pipeline.height":                   pl.Height,
		"pipeline.channels":                 pl.Channels,
		"pipeline.resample":                 pl.Resample,
		"pipeline.normalise":                pl.Normalise,
		"pipeline.denoise":                  pl.Denoise,
		"pipeline.contrast":                 pl.Contrast,
	}
	// Fields no conversion carries, and who reads them instead.
	// The round schedule goes to the coordinator's round machine, which this
	// package may not import (the site agent imports this package and must
	// not depend on the coordinator): coordinator.machineConfig converts it.
	const machine = "the coordinator's round machine (coordinator.machineConfig)"
	const gates = "the promotion gates (coordinator/registry.Decide)"
	const retrain = "the coordinator's retraining triggers (coordinator/retrain.go)"
	const tuning = "the coordinator's tuning trials (coordinator/tune.go, jobspec.TuneCandidates)"
	readDirectly := map[string]string{
		"model.code":                          "the site agent hands it to the external trainer after its hospital's approval (site-agent/custom.go)",
		"model.code_file":                     "shown to people only (concordctl, the refusals that name the file)",
		"rounds":                              machine,
		"min_sites":                           machine,
		"round_deadline_seconds":              machine,
		"straggler_cutoff_seconds":            machine,
		"sites":                               machine,
		"privacy.secure_aggregation":          machine + "; the site agent encrypts when it is mhe",
		"privacy.threshold":                   machine + " and privacy/he in the coordinator",
		"name":                                "shown to people only (concordctl, the coordinator's events)",
		"purpose":                             "read by the coordinator's compliance reports (coordinator/report.go)",
		"legal_basis":                         "read by the coordinator's compliance reports (coordinator/report.go)",
		"seed":                                "learning.New(ModelSpec(s), s.Seed) and siteagent.TrainingSeed",
		"training.clip_norm":                  "the site agent clips each update with it (siteagent.ClipL2), whichever trainer ran",
		"privacy.he_params":                   "looked up by privacy/he in the coordinator and the site agent",
		"validation_sites":                    machine + " (excluded from training) and the coordinator's validation tasks (coordinator/validate.go)",
		"validation.min_auc":                  gates,
		"validation.min_sensitivity":          gates,
		"validation.at_specificity":           gates + "; the validation site's operating point",
		"validation.max_auc_regression":       gates,
		"validation.max_subgroup_gap":         gates,
		"validation.min_subgroup_count":       "the validation site's subgroup suppression (site-agent/validate.go)",
		"validation.receipt_deadline_seconds": "the coordinator's gate wait (coordinator/models.go)",
		"validation.min_dice":                 gates,
		"validation.final_only":               "the coordinator's validation tasks (coordinator/validate.go)",
		"validation.score_local_models":       "the coordinator's cross-site validation tasks (coordinator/validate.go)",
		"mode":                                "the coordinator's submission (coordinator/folds.go)",
		"init_version":                        "the coordinator's initial model (coordinator/jobs.go)",
		"retrain.drift_psi":                   retrain,
		"retrain.min_feedback":                retrain,
		"retrain.every_seconds":               retrain,
		"retrain.require_approval":            retrain,
		"tuning.server_lr":                    tuning,
		"tuning.local_epochs":                 tuning,
		"tuning.rounds":                       tuning,
		"tuning.eta":                          tuning,
	}
	leaves(s.ProtoReflect(), "", func(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value, _ bool) {
		got, ok := carried[path]
		if !ok {
			if readDirectly[path] == "" {
				t.Errorf("%s: no conversion carries it and it is not listed as read directly: convert it in convert.go or list it", path)
			}
			return
		}
		if readDirectly[path] != "" {
			t.Errorf("%s: both carried and listed as read directly", path)
		}
		if g, w := fmt.Sprint(got), show(fd, v); g != w {
			t.Errorf("%s: converted to %s, the spec says %s", path, g, w)
		}
	})
	if !slices.Equal(tc.ClassWeights, []float32{0.8, 0.4, 0, 0, 0.8}) {
		t.Errorf("balanced class weights for labels %v: %v", labels, tc.ClassWeights)
	}
}

// TestTrainConfigStrategy: only FedProx adds its proximal term to local
// training, and only balanced class weighting weights the loss.
func TestTrainConfigStrategy(t *testing.T) {
	cases := []struct {
		yaml    string
		proxMu  float64
		weights bool
	}{
		{"aggregation: {strategy: fedprox, prox_mu: 0.2}\n", 0.2, false},
		{"aggregation: {strategy: fedprox}\n", 0.01, false},
		{"aggregation: {strategy: fedavg}\ntraining: {class_weighting: balanced}\n", 0, true},
		{"aggregation: {strategy: fedyogi}\n", 0, false},
	}
	for _, c := range cases {
		s, err := Parse([]byte(c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		tc := TrainConfig(s, []int{0, 1})
		if tc.ProxMu != c.proxMu || (tc.ClassWeights != nil) != c.weights {
			t.Errorf("%q: prox_mu %g, class weights %v", c.yaml, tc.ProxMu, tc.ClassWeights)
		}
	}
}

// TestDPConfig: the sample rate is batch_size/examples capped at 1, a
// round is local_steps or local_epochs × round(1/q) steps, and a planned
// noise multiplier spends at most the job's epsilon over all its rounds
// (and not much less).
func TestDPConfig(t *testing.T) {
	cases := []struct {
		yaml     string
		examples int
		q        float64
		steps    int
		planned  bool
	}{
		{"rounds: 3\ntraining: {batch_size: 32, local_epochs: 2}\nprivacy: {level: record, example_clip: 1, delta: 1e-5, epsilon: 4}\n", 1000, 0.032, 2 * 31, true},
		{"rounds: 3\ntraining: {batch_size: 32, local_steps: 7}\nprivacy: {level: record, example_clip: 1, delta: 1e-5, epsilon: 4}\n", 1000, 0.032, 7, true},
		{"training: {batch_size: 64}\nprivacy: {level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 1.3}\n", 10, 1, 1, false},
	}
	for _, c := range cases {
		s, err := Parse([]byte(c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		d, err := DPConfig(s, c.examples)
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if d.SampleRate != c.q || d.StepsPerRound != c.steps || d.Planned != c.planned || d.Rounds != int(s.Rounds) || d.Clip != 1 {
			t.Errorf("%q: %+v", c.yaml, d)
		}
		if !c.planned {
			if d.NoiseMultiplier != 1.3 {
				t.Errorf("%q: noise %v, want the spec's 1.3", c.yaml, d.NoiseMultiplier)
			}
			continue
		}
		eps, err := dp.Spent(d.NoiseMultiplier, d.SampleRate, d.Rounds*d.StepsPerRound, d.Delta)
		if err != nil || eps > 4 || eps < 3.99 {
			t.Errorf("%q: the planned noise %v spends %v over the job, want just under 4 (%v)", c.yaml, d.NoiseMultiplier, eps, err)
		}
	}
	off, err := DPConfig(valid(t), 100)
	if off != nil || err != nil {
		t.Errorf("a job without DP: %+v, %v", off, err)
	}
	s, _ := Parse([]byte("privacy: {level: record, example_clip: 1, delta: 1e-5, epsilon: 4}\n"))
	if _, err := DPConfig(s, 0); err == nil {
		t.Error("DPConfig for a site without examples: no error")
	}
}

// TestSiteDPConfig: z is the spec's or planned for the job's rounds at
// q = 1; under adaptive clipping the update's share is split off; a task's
// clip is taken only when the job adapts it, and only if finite and
// positive.
func TestSiteDPConfig(t *testing.T) {
	s, err := Parse([]byte("rounds: 3\nmin_sites: 3\nprivacy: {level: site, update_clip: 0.5, delta: 1e-5, epsilon: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := SiteDPConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := dp.Spent(d.NoiseMultiplier, 1, 3, 1e-5)
	if err != nil || !d.Planned || eps > 4 || eps < 3.99 || d.UpdateNoiseMultiplier != d.NoiseMultiplier || d.Adaptive() || d.ExtraValues() != 0 {
		t.Errorf("%+v spends %v (%v)", d, eps, err)
	}
	if got, want := d.UpdateStd(), d.NoiseMultiplier*0.5/math.Sqrt(3); math.Abs(got-want) > 1e-12 {
		t.Errorf("site noise std %v, want z·C/sqrt(m) = %v", got, want)
	}
	if _, err := d.WithClip(0.7); err == nil {
		t.Error("a fixed-clip job took another clip from the task")
	}
	if c, err := d.WithClip(0); err != nil || c.Clip != 0.5 {
		t.Errorf("no clip in the task: %v, %v", c.Clip, err)
	}

	s, err = Parse([]byte("rounds: 3\nmin_sites: 20\nprivacy: {level: site, update_clip: 0.5, delta: 1e-5, noise_multiplier: 1, adaptive_clip: {quantile: 0.5}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err = SiteDPConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	// The defaults: lr 0.2, count noise min_sites/20 = 1.
	if d.ClipLR != 0.2 || d.CountNoise != 1 || d.ExtraValues() != 1 || math.Abs(d.UpdateNoiseMultiplier-1/math.Sqrt(0.75)) > 1e-12 {
		t.Errorf("adaptive: %+v", d)
	}
	for _, c := range []float64{math.NaN(), math.Inf(1), -1, 2e6} {
		if _, err := d.WithClip(c); err == nil {
			t.Errorf("clip %v taken", c)
		}
	}
	if c, err := d.WithClip(0.8); err != nil || c.Clip != 0.8 {
		t.Errorf("adapted clip 0.8: %v, %v", c.Clip, err)
	}
}
