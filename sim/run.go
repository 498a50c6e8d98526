package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/plot"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// Config is one simulated job.
type Config struct {
	Sites     int
	Rounds    int
	Seed      int64
	Partition string // iid | dirichlet:ALPHA (with Dataset)
	Dataset   string // MedMNIST .npz; empty means generated hospitals
	Out       string
	// SecureAggregation is "mhe" or "none".
	SecureAggregation string
	Threshold         int
	Strategy          string
	ServerLR          float64
	ProxMu            float64
	LocalEpochs       int
	// LocalSteps > 0 is the job's training.local_steps: each round's local
	// budget in optimiser steps, instead of LocalEpochs.
	LocalSteps   int
	BatchSize    int
	LearningRate float64
	// ImagesPerSite is the generated hospitals' size (default 160).
	ImagesPerSite int
	// DPEpsilon > 0 turns on record-level DP-SGD: each site plans the noise
	// that spends at most DPEpsilon (at DPDelta, default 1e-5) over the
	// job, clipping each example's gradient to DPClip (default 1), and each
	// site's budget is DPEpsilon.
	DPEpsilon, DPDelta, DPClip float64
	// ValidationSites of the Sites hospitals never train: each scores
	// every round's model (generated hospitals: on all their images; with
	// Dataset: on a share of the test split) and returns a signed receipt.
	ValidationSites int
	// GateMinAUC > 0 makes publication require this validation AUC at
	// every validation site.
	GateMinAUC float64
	// ScoreLocalModels also scores each training site's last local model
	// at the validation sites (the cross-site matrix; plaintext jobs only).
	ScoreLocalModels bool
	// DPLevel is "record" (the default: DP-SGD as above) or "site": each
	// site clips its update to DPClip and adds its share of the noise that
	// spends DPEpsilon over the job; DPAdaptiveQuantile > 0 adapts that
	// clip (DPClip is then the first round's).
	DPLevel            string
	DPAdaptiveQuantile float64
	// Serve, after publishing, sends this many generated studies by
	// STOW-RS to the first hospital serving the version, whose results go
	// to the FHIR endpoint ServeFHIR (serve.go).
	Serve     int
	ServeFHIR string
	// Task is TaskClassification (the default) or TaskSegmentation: a
	// federated U-Net on generated CT hospitals (ImagesPerSite slices
	// each), compared with the same training on the pooled data.
	Task string
	// Model is the classifier trained on generated hospitals or a
	// MedMNIST set: "cnn" (the default), "resnet18" or "resnet34" (model.arch).
	// ModelWidth is its model.base_width (0: the arch's default).
	Model      string
	ModelWidth int
	// SegModel, for TaskSegmentation, is a declared segmenter (model.arch
	// graph) trained instead of the unet; its input side must be the CT
	// hospitals' (32) or zero.
	SegModel *pb.ModelSpec
	// TuneServerLR and TuneLocalEpochs, when either is set, make the job
	// tune them (the job spec's tuning section) with first-rung trials of
	// TuneRounds rounds before it trains; validation sites are required,
	// and with Dataset they hold the validation split, not the test split,
	// so that nothing the search sees is what the summary reports.
	TuneServerLR    []float64
	TuneLocalEpochs []uint32
	TuneRounds      int
	// Size is the model input side for generated hospitals (default 32);
	// the hospitals render their images at a native size scaled with it.
	Size int
	// GateMinDice > 0 makes publication of a segmentation model require
	// this Dice at every validation site.
	GateMinDice float64
	// Progress receives one line per round; nil discards.
	Progress io.Writer
	Logger   *slog.Logger
}

// Summary is what a run reports; concord-sim --json prints it.
type Summary struct {
	RoundsCompleted   int                `json:"rounds_completed"`
	Sites             int                `json:"sites"`
	Strategy          string             `json:"strategy"`
	Metrics           Metrics            `json:"metrics"`
	ModelVersion      string             `json:"model_version"`
	SecureAggregation string             `json:"secure_aggregation"`
	Threshold         int                `json:"threshold,omitempty"`
	BytesPerParam     float64            `json:"bytes_per_param,omitempty"`
	WallSeconds       float64            `json:"wall_seconds"`
	Seed              int64              `json:"seed"`
	Dataset           string             `json:"dataset"`
	Partition         string             `json:"partition,omitempty"`
	JobID             string             `json:"job_id"`
	State             string             `json:"state"`
	Reason            string             `json:"reason,omitempty"`
	Params            int                `json:"params"`
	TrainExamples     int                `json:"train_examples"`
	TestExamples      int                `json:"test_examples"`
	PerRound          []RoundMetrics     `json:"per_round"`
	SiteExamples      map[string]int     `json:"site_examples"`
	SitePositiveRate  map[string]float64 `json:"site_positive_rate"`
	Files             []string           `json:"files,omitempty"`
	// Epsilon and Delta are the largest cumulative spend of any site (0
	// and 0 without differential privacy), at DPLevel (record or site).
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	DPLevel string  `json:"dp_level,omitempty"`
	// AuditVerified says the job's exported audit bundle verified offline
	// with its witnesses' cosignatures (audit/ holds it and the reports).
	AuditVerified bool `json:"audit_verified"`
	// AuditError says why the audit bundle did not verify.
	AuditError string `json:"audit_error,omitempty"`
	// PublishedVersion is the version the gates let through (empty when
	// they rejected the candidate); Gate says what they decided and why.
	PublishedVersion string `json:"published_version"`
	Gate             Gate   `json:"gate"`
	// Validation is each validation site's signed figures for the final
	// model.
	Validation map[string]SiteValidation `json:"validation,omitempty"`
	// CrossSite is the final round's AUC by model (global, site:NAME) and
	// validation site.
	CrossSite map[string]map[string]float64 `json:"cross_site,omitempty"`
	// Serving is --serve's result (absent without it).
	*ServeSummary
	// Task is "segmentation" for a segmentation run (empty: classification);
	// Segmentation holds its federated, centralised and untrained Dice.
	Task         string        `json:"task,omitempty"`
	Segmentation *Segmentation `json:"segmentation,omitempty"`
	// Tuning is the federated search that chose the job's settings.
	Tuning *TuningSummary `json:"tuning,omitempty"`
}

// Gate is the promotion decision.
type Gate struct {
	State   string   `json:"state"` // passed | rejected
	Reasons []string `json:"reasons,omitempty"`
}

// SiteValidation is one validation site's result (from its signed
// receipt): each metric with its 95% interval.
type SiteValidation struct {
	Examples int                `json:"examples"`
	Metrics  map[string]float64 `json:"metrics"`
	Lower    map[string]float64 `json:"lower"`
	Upper    map[string]float64 `json:"upper"`
	Rounds   map[int]float64    `json:"auc_by_round,omitempty"`
}

// Metrics are held-out test metrics of a model.
type Metrics struct {
	AUC         float64 `json:"auc"`
	Accuracy    float64 `json:"accuracy"`
	Sensitivity float64 `json:"sensitivity"`
	Specificity float64 `json:"specificity"`
	F1          float64 `json:"f1"`
}

// RoundMetrics is one point of the learning curve.
type RoundMetrics struct {
	Round   int     `json:"round"`
	Metrics Metrics `json:"metrics"`
	Seconds float64 `json:"seconds"`
	Sites   int     `json:"sites"`
	// ValidationAUC is the mean AUC the validation sites reported for this
	// round's model (0 when none reported).
	ValidationAUC float64 `json:"validation_auc,omitempty"`
}

func (c *Config) defaults() {
	if c.Sites <= 0 {
		c.Sites = 3
	}
	if c.ValidationSites < 0 {
		c.ValidationSites = 0
	}
	if c.Rounds <= 0 {
		c.Rounds = 10
	}
	if c.Partition == "" {
		c.Partition = "iid"
	}
	if c.SecureAggregation == "" {
		c.SecureAggregation = "mhe"
	}
	if c.Strategy == "" {
		c.Strategy = "fedavg"
	}
	if c.LocalSteps > 0 {
		c.LocalEpochs = 0
	} else if c.LocalEpochs <= 0 {
		c.LocalEpochs = 1
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 32
	}
	if c.ImagesPerSite <= 0 {
		c.ImagesPerSite = 160
	}
	if c.Model == "" {
		c.Model = "cnn"
	}
	if c.Size <= 0 {
		c.Size = generatedSize
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.DPDelta <= 0 {
		c.DPDelta = 1e-5
	}
	if c.DPLevel == "" {
		c.DPLevel = string(dp.Record)
	}
	if c.DPClip <= 0 {
		c.DPClip = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// siteData is the data prepared for the simulated sites.
type siteData struct {
	names      []string
	validation []string // names of the sites that only validate
	data       []siteagent.DataSource
	counts     map[string]int
	posRat     map[string]float64
	test       learning.Dataset
	size       int
	train      int
}

// Run builds the federation, runs one job to its end and writes the
// results to cfg.Out.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg.defaults()
	if cfg.ValidationSites >= cfg.Sites {
		return Summary{}, fmt.Errorf("%d validation sites of %d: at least one site must train", cfg.ValidationSites, cfg.Sites)
	}
	start := time.Now()
	if cfg.DPLevel != string(dp.Record) && cfg.DPLevel != string(dp.Site) {
		return Summary{}, fmt.Errorf("DP level %q: use record or site", cfg.DPLevel)
	}
	if cfg.Out == "" {
		return Summary{}, errors.New("no output directory")
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return Summary{}, err
	}
	work := filepath.Join(cfg.Out, "federation")
	if err := os.RemoveAll(work); err != nil {
		return Summary{}, err
	}
	switch cfg.Task {
	case "", TaskClassification:
		if cfg.SegModel != nil {
			return Summary{}, errors.New("a segmentation model is for the segmentation task")
		}
	case TaskSegmentation:
		if cfg.Model != "cnn" || cfg.Size != generatedSize {
			return Summary{}, errors.New("the model and size choices are for classification; segmentation trains the unet (or SegModel) on its CT hospitals")
		}
		return runSegmentation(ctx, cfg)
	default:
		return Summary{}, fmt.Errorf("task %q: use %s or %s", cfg.Task, TaskClassification, TaskSegmentation)
	}
	if cfg.GateMinDice > 0 {
		return Summary{}, errors.New("the Dice gate is for segmentation: use --gate-min-auc, or --task segmentation")
	}
	if cfg.Dataset != "" && cfg.Size != generatedSize {
		return Summary{}, fmt.Errorf("size %d: a MedMNIST set has its own size; the size is for generated hospitals", cfg.Size)
	}
	var sd *siteData
	var err error
	if cfg.Dataset != "" {
		sd, err = medmnistSites(cfg)
	} else {
		sd, err = generatedSites(ctx, cfg, filepath.Join(work, "hospitals"))
	}
	if err != nil {
		return Summary{}, err
	}
	fmt.Fprintf(cfg.Progress, "%d sites ready (%d training images, %d held-out test images, %dx%d)\n", len(sd.names), sd.train, sd.test.N, sd.size, sd.size)

	fed, err := Start(Options{Dir: work, Logger: cfg.Logger, Seed: cfg.Seed})
	if err != nil {
		return Summary{}, err
	}
	defer fed.Close()
	for i, name := range sd.names {
		o := SiteOptions{Data: sd.data[i]}
		switch {
		case cfg.DPEpsilon > 0 && cfg.DPLevel == string(dp.Site):
			o.Privacy = siteagent.PrivacyPolicy{SiteBudget: &dp.Budget{Level: dp.Site, Epsilon: cfg.DPEpsilon, Delta: cfg.DPDelta}}
		case cfg.DPEpsilon > 0:
			o.Privacy = siteagent.PrivacyPolicy{Budget: &dp.Budget{Level: dp.Record, Epsilon: cfg.DPEpsilon, Delta: cfg.DPDelta}}
		}
		if err := fed.AddSite(name, o); err != nil {
			return Summary{}, err
		}
	}
	if err := fed.WaitSites(ctx, len(sd.names)); err != nil {
		return Summary{}, err
	}
	spec := &pb.JobSpec{
		Name: "simulation",
		Model: &pb.ModelSpec{Arch: cfg.Model, Channels: 1, Height: uint32(sd.size), Width: uint32(sd.size), Classes: 2,
			BaseWidth: uint32(cfg.ModelWidth)},
		Rounds:               uint32(cfg.Rounds),
		MinSites:             uint32(len(sd.names) - len(sd.validation)),
		ValidationSites:      sd.validation,
		RoundDeadlineSeconds: 600,
		Aggregation:          &pb.AggregationSpec{Strategy: cfg.Strategy, ServerLr: cfg.ServerLR, ProxMu: cfg.ProxMu},
		Training: &pb.TrainingSpec{LocalEpochs: uint32(cfg.LocalEpochs), LocalSteps: uint32(cfg.LocalSteps),
			BatchSize: uint32(cfg.BatchSize), LearningRate: cfg.LearningRate, ClipNorm: 0},
		Privacy: &pb.PrivacySpec{SecureAggregation: cfg.SecureAggregation, Threshold: uint32(cfg.Threshold)},
		Seed:    cfg.Seed,
	}
	if cfg.Dataset == "" {
		spec.Pipeline = generatedPipeline(sd.size)
	}
	if cfg.GateMinAUC > 0 || cfg.ScoreLocalModels {
		spec.Validation = &pb.ValidationSpec{MinAuc: cfg.GateMinAUC, ScoreLocalModels: cfg.ScoreLocalModels}
	}
	switch {
	case cfg.DPEpsilon > 0 && cfg.DPLevel == string(dp.Site):
		spec.Privacy.Level, spec.Privacy.Epsilon, spec.Privacy.Delta, spec.Privacy.UpdateClip = "site", cfg.DPEpsilon, cfg.DPDelta, cfg.DPClip
		if q := cfg.DPAdaptiveQuantile; q > 0 {
			// The count's noise must exceed half the round's z (dp.AdaptiveSplit);
			// the paper's sites/20 is for hundreds of sites, not a handful.
			z, err := dp.PlanSite(cfg.DPEpsilon, cfg.DPDelta, cfg.Rounds)
			if err != nil {
				return Summary{}, err
			}
			spec.Privacy.AdaptiveClipQuantile, spec.Privacy.AdaptiveClipCountNoise = q, max(float64(spec.MinSites)/20, z)
		}
	case cfg.DPEpsilon > 0:
		spec.Privacy.Level, spec.Privacy.Epsilon, spec.Privacy.Delta, spec.Privacy.ExampleClip = "record", cfg.DPEpsilon, cfg.DPDelta, cfg.DPClip
	}
	if cfg.SecureAggregation == "mhe" && cfg.Threshold > 0 {
		spec.MinSites = uint32(cfg.Threshold)
	}
	if cfg.tunes() {
		spec.Tuning = &pb.TuningSpec{ServerLr: cfg.TuneServerLR, LocalEpochs: cfg.TuneLocalEpochs, Rounds: uint32(cfg.TuneRounds)}
	}
	jobspec.Defaults(spec)
	if err := jobspec.Validate(spec); err != nil {
		return Summary{}, err
	}
	job, err := fed.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		return Summary{}, fmt.Errorf("submit job: %w", err)
	}
	var tuning *TuningSummary
	if cfg.tunes() {
		if job, tuning, err = awaitTuning(ctx, fed, job.TuneGroup, cfg.Progress); err != nil {
			return Summary{}, err
		}
	}
	sum := Summary{Tuning: tuning, Sites: len(sd.names) - len(sd.validation), Strategy: spec.Aggregation.Strategy, SecureAggregation: spec.Privacy.SecureAggregation,
		Threshold: int(spec.Privacy.Threshold), Seed: cfg.Seed, JobID: job.Id, TrainExamples: sd.train, TestExamples: sd.test.N,
		SiteExamples: sd.counts, SitePositiveRate: sd.posRat, Dataset: "generated"}
	if cfg.Dataset != "" {
		sum.Dataset, sum.Partition = filepath.Base(cfg.Dataset), cfg.Partition
	}
	model, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		return Summary{}, err
	}
	sum.Params = len(model.Weights())

	final, err := follow(ctx, fed, job.Id, func(r *pb.RoundSummary) error {
		w, err := fetchModel(ctx, fed.Admin, fmt.Sprintf("%s@%d", job.Id, r.Round))
		if err != nil {
			return err
		}
		m, err := evaluate(model, w, sd.test)
		if err != nil {
			return err
		}
		sum.PerRound = append(sum.PerRound, RoundMetrics{Round: int(r.Round), Metrics: m, Seconds: r.Seconds, Sites: len(r.Contributors)})
		fmt.Fprintf(cfg.Progress, "round %2d/%d  sites %d/%d  test AUC %.3f  accuracy %.3f  sensitivity %.3f  specificity %.3f  (%.1fs)\n",
			r.Round, cfg.Rounds, len(r.Contributors), len(r.Participants), m.AUC, m.Accuracy, m.Sensitivity, m.Specificity, r.Seconds)
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	sum.State, sum.Reason, sum.RoundsCompleted, sum.ModelVersion = final.State, final.Reason, len(final.Rounds), final.ModelVersion
	sum.PublishedVersion = final.ModelVersion
	summariseValidation(final, &sum)
	if err := writeModelCard(ctx, fed, cfg.Out, final, &sum); err != nil {
		return Summary{}, err
	}
	if cfg.Serve > 0 {
		sum.ServeSummary = &ServeSummary{}
		if err := serveStudies(ctx, cfg, sum.PublishedVersion, sd.names[0], chestStudies, sum.ServeSummary); err != nil {
			sum.ServeError = err.Error()
		}
	}
	if sum.SecureAggregation == "mhe" {
		sum.BytesPerParam = secureBytesPerParam(fed, job.Id, sum.Params)
	}
	if final.ModelVersion != "" {
		w, err := fetchModel(ctx, fed.Admin, final.ModelVersion)
		if err != nil {
			return Summary{}, err
		}
		if sum.Metrics, err = evaluate(model, w, sd.test); err != nil {
			return Summary{}, err
		}
		if err := writeModel(cfg.Out, model, w, &sum); err != nil {
			return Summary{}, err
		}
	}
	if err := writeCharts(cfg.Out, &sum); err != nil {
		return Summary{}, err
	}
	return finish(ctx, fed, cfg.Out, job.Id, final, start, sum)
}

// writeModel writes the job's final weights and their layout manifest
// into out and lists them in the summary.
func writeModel(out string, model *learning.Model, w []float32, sum *Summary) error {
	if err := os.WriteFile(filepath.Join(out, "model.f32"), learning.EncodeWeights(w), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "model.layout.json"), model.Layout().JSON(), 0o644); err != nil {
		return err
	}
	sum.Files = append(sum.Files, "model.f32", "model.layout.json")
	return nil
}

// finish writes the job's audit bundle and summary.json, and turns a job
// that did not complete into the run's error.
func finish(ctx context.Context, fed *Federation, out, jobID string, final *pb.Job, start time.Time, sum Summary) (Summary, error) {
	if err := writeAudit(ctx, fed, out, jobID, &sum); err != nil {
		return Summary{}, err
	}
	sum.WallSeconds = time.Since(start).Seconds()
	data, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "summary.json"), data, 0o644); err != nil {
		return Summary{}, err
	}
	if final.State != "completed" {
		return sum, fmt.Errorf("job %s %s: %s", jobID, final.State, final.Reason)
	}
	return sum, nil
}

// follow watches a job to its end, calling onRound once per aggregated round.
func follow(ctx context.Context, fed *Federation, id string, onRound func(*pb.RoundSummary) error) (*pb.Job, error) {
	stream, err := fed.Admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: id})
	if err != nil {
		return nil, err
	}
	seen := 0
	var last *pb.Job
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("watch job: %w", err)
		}
		last = ev.Job
		for ; seen < len(last.Rounds); seen++ {
			if err := onRound(last.Rounds[seen]); err != nil {
				return nil, err
			}
		}
	}
	if last == nil {
		return nil, errors.New("job watch ended without events")
	}
	return last, nil
}

func fetchModel(ctx context.Context, admin pb.AdminClient, version string) ([]float32, error) {
	stream, err := admin.GetModel(ctx, &pb.GetModelRequest{Version: version})
	if err != nil {
		return nil, err
	}
	var raw []byte
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fetch model %s: %w", version, err)
		}
		raw = append(raw, m.Chunk.Data...)
	}
	return learning.DecodeWeightsInto(nil, raw), nil
}

// evaluate scores weights on the held-out test set at threshold 0.5.
func evaluate(model *learning.Model, w []float32, test learning.Dataset) (Metrics, error) {
	if err := model.SetWeights(w); err != nil {
		return Metrics{}, err
	}
	probs, err := model.Predict(test)
	if err != nil {
		return Metrics{}, err
	}
	scores := make([]float64, test.N)
	for i := range scores {
		scores[i] = float64(probs[2*i+1])
	}
	rep, err := evaluation.Binary(scores, test.Y, 0.5)
	if err != nil {
		return Metrics{}, err
	}
	return Metrics{AUC: rep.AUC.Value, Accuracy: rep.Accuracy.Value, Sensitivity: rep.Sensitivity.Value,
		Specificity: rep.Specificity.Value, F1: rep.F1.Value}, nil
}

func writeCharts(out string, s *Summary) error {
	if len(s.PerRound) == 0 {
		return nil
	}
	var x, auc, acc, sens, spec, vx, vauc []float64
	for _, r := range s.PerRound {
		x = append(x, float64(r.Round))
		auc = append(auc, r.Metrics.AUC)
		acc = append(acc, r.Metrics.Accuracy)
		sens = append(sens, r.Metrics.Sensitivity)
		spec = append(spec, r.Metrics.Specificity)
		if r.ValidationAUC > 0 {
			vx, vauc = append(vx, float64(r.Round)), append(vauc, r.ValidationAUC)
		}
	}
	lo, hi := 0.0, 1.0
	chart := plot.Chart{
		Title:  fmt.Sprintf("Held-out test metrics per round (%d sites, %s, secure aggregation %s)", s.Sites, s.Strategy, s.SecureAggregation),
		XLabel: "round", YLabel: "metric", YMin: &lo, YMax: &hi, Width: 960, Height: 540,
		Series: []plot.Series{{Name: "AUC", X: x, Y: auc}, {Name: "accuracy", X: x, Y: acc},
			{Name: "sensitivity", X: x, Y: sens}, {Name: "specificity", X: x, Y: spec}},
	}
	if len(vx) > 0 {
		chart.Series = append(chart.Series, plot.Series{Name: "validation-site AUC (signed receipts)", X: vx, Y: vauc})
	}
	f, err := os.Create(filepath.Join(out, "learning-curve.png"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := chart.PNG(f); err != nil {
		return err
	}
	s.Files = append(s.Files, "learning-curve.png")
	return nil
}
