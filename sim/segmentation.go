package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
	"github.com/concord-fl/concord/sim/synth"
	siteagent "github.com/concord-fl/concord/site-agent"
	"google.golang.org/protobuf/proto"
)

// Tasks of Config.Task.
const (
	TaskClassification = "classification"
	TaskSegmentation   = "segmentation"
)

// segSize is the U-Net's input in the segmentation simulation: the
// generated 64x64 slices are area-resampled to it by each site's pipeline.
const segSize = 32

// slicesPerPatient is the generated volumes' depth.
const slicesPerPatient = 8

// Segmentation is the result of a segmentation simulation: Dice (mean over
// held-out test slices, with a 95% bootstrap interval) of the federated
// model, of a centralised model trained on the training sites' data pooled
// with the same budget (the same number of examples processed: rounds ×
// local epochs passes over the pooled data, same batch size, optimiser,
// learning rate and seed), and of the untrained starting model. In a
// segmentation run the summary's site_positive_rate is each site's share
// of foreground pixels.
type Segmentation struct {
	FederatedDice   evaluation.Estimate `json:"federated_dice"`
	CentralisedDice evaluation.Estimate `json:"centralised_dice"`
	UntrainedDice   evaluation.Estimate `json:"untrained_dice"`
	FederatedIoU    evaluation.Estimate `json:"federated_iou"`
	CentralisedIoU  evaluation.Estimate `json:"centralised_iou"`
	// DicePerRound is the federated model's test Dice after each round.
	DicePerRound []float64 `json:"dice_per_round"`
	// CentralisedEpochs is the pooled model's training length.
	CentralisedEpochs int     `json:"centralised_epochs"`
	CentralisedSecs   float64 `json:"centralised_seconds"`
	Size              int     `json:"size"`
}

// segSites writes each generated CT hospital's slices (DICOM with PNG
// masks beside them) and gives each site a SegFolder over its folder;
// held-out test slices (other patients of the same scanners) are read
// the same way. The last cfg.ValidationSites hospitals only validate.
func segSites(ctx context.Context, cfg Config, dir string, spec *pb.JobSpec) (*siteData, learning.Dataset, error) {
	sd := &siteData{counts: map[string]int{}, posRat: map[string]float64{}, size: segSize}
	var pooled learning.Dataset
	patients := max(cfg.ImagesPerSite/slicesPerPatient, 1)
	for i, h := range synth.CTSites(cfg.Sites, cfg.Seed) {
		h.Patients, h.SlicesPer = patients, slicesPerPatient
		name := h.Slug()
		if _, err := synth.WriteCT(filepath.Join(dir, "train"), h, cfg.Seed+int64(i)); err != nil {
			return nil, pooled, err
		}
		src := &siteagent.SegFolder{Dir: filepath.Join(dir, "train", name)}
		ds, err := src.Dataset(ctx, spec)
		if err != nil {
			return nil, pooled, fmt.Errorf("site %s: %w", name, err)
		}
		sd.names = append(sd.names, name)
		sd.data = append(sd.data, src)
		sd.counts[name] = ds.N
		sd.posRat[name] = foregroundRate(ds)
		if i >= cfg.Sites-cfg.ValidationSites {
			sd.validation = append(sd.validation, name)
		} else {
			sd.train += ds.N
			pooled = concatSeg(pooled, ds)
		}
		test := h
		test.Patients = max(patients/2, 2)
		if _, err := synth.WriteCT(filepath.Join(dir, "test"), test, cfg.Seed+1000+int64(i)); err != nil {
			return nil, pooled, err
		}
		tds, err := (&siteagent.SegFolder{Dir: filepath.Join(dir, "test", name)}).Dataset(ctx, spec)
		if err != nil {
			return nil, pooled, err
		}
		sd.test = concatSeg(sd.test, tds)
	}
	return sd, pooled, nil
}

func concatSeg(a, b learning.Dataset) learning.Dataset {
	masks := append(append([]float32(nil), a.Masks...), b.Masks...)
	out := concat(a, b)
	out.Masks = masks
	return out
}

// foregroundRate is the share of mask pixels that are foreground.
func foregroundRate(d learning.Dataset) float64 {
	if len(d.Masks) == 0 {
		return 0
	}
	var on float64
	for _, v := range d.Masks {
		on += float64(v)
	}
	return on / float64(len(d.Masks))
}

// diceOf scores weights on a dataset's masks at probability 0.5.
func diceOf(model *learning.Model, w []float32, test learning.Dataset) (evaluation.SegmentationReport, error) {
	if err := model.SetWeights(w); err != nil {
		return evaluation.SegmentationReport{}, err
	}
	probs, err := model.Predict(test)
	if err != nil {
		return evaluation.SegmentationReport{}, err
	}
	hw := test.H * test.W
	preds, truths := make([][]float32, test.N), make([][]float32, test.N)
	for i := range preds {
		preds[i], truths[i] = probs[i*hw:(i+1)*hw], test.Masks[i*hw:(i+1)*hw]
	}
	return evaluation.Dice(preds, truths, 0.5)
}

func segSpec(cfg Config, sd *siteData) *pb.JobSpec {
	spec := &pb.JobSpec{
		Name:                 "segmentation simulation",
		Model:                &pb.ModelSpec{Arch: jobspec.ArchUNet, Channels: 1, Height: segSize, Width: segSize},
		Rounds:               uint32(cfg.Rounds),
		RoundDeadlineSeconds: 600,
		Aggregation:          &pb.AggregationSpec{Strategy: cfg.Strategy, ServerLr: cfg.ServerLR, ProxMu: cfg.ProxMu},
		Training: &pb.TrainingSpec{LocalEpochs: uint32(cfg.LocalEpochs), BatchSize: uint32(cfg.BatchSize),
			LearningRate: cfg.LearningRate},
		Privacy:  &pb.PrivacySpec{SecureAggregation: cfg.SecureAggregation, Threshold: uint32(cfg.Threshold)},
		Pipeline: &pb.PipelineSpec{Width: segSize, Height: segSize, Channels: 1, Resample: "area", Normalise: "ct-window:40:400"},
		Seed:     cfg.Seed,
	}
	if cfg.SegModel != nil {
		spec.Model = proto.Clone(cfg.SegModel).(*pb.ModelSpec)
		if spec.Model.Height == 0 && spec.Model.Width == 0 {
			spec.Model.Height, spec.Model.Width = segSize, segSize
		}
	}
	if sd != nil {
		spec.MinSites = uint32(len(sd.names) - len(sd.validation))
		spec.ValidationSites = sd.validation
	}
	if cfg.GateMinDice > 0 {
		spec.Validation = &pb.ValidationSpec{MinDice: cfg.GateMinDice}
	}
	if cfg.SecureAggregation == "mhe" && cfg.Threshold > 0 {
		spec.MinSites = uint32(cfg.Threshold)
	}
	jobspec.Defaults(spec)
	return spec
}

// runSegmentation is Run for TaskSegmentation: a federated U-Net job on
// generated CT hospitals, then the centralised baseline on the same data.
func runSegmentation(ctx context.Context, cfg Config) (Summary, error) {
	start := time.Now()
	switch {
	case cfg.Dataset != "":
		return Summary{}, fmt.Errorf("--task segmentation generates its CT hospitals: remove --dataset")
	case cfg.DPEpsilon > 0:
		return Summary{}, fmt.Errorf("--task segmentation does not run with differential privacy yet: remove --dp-epsilon")
	case cfg.GateMinAUC > 0 || cfg.ScoreLocalModels:
		return Summary{}, fmt.Errorf("--gate-min-auc and --score-local-models are for classification: a segmentation job is gated by --gate-min-dice")
	case cfg.tunes():
		return Summary{}, fmt.Errorf("--task segmentation does not tune yet: remove --tune-server-lr and --tune-local-epochs")
	}
	if cfg.SegModel != nil {
		spec := segSpec(cfg, nil)
		if m := spec.Model; m.Height != segSize || m.Width != segSize {
			return Summary{}, fmt.Errorf("the segmentation model takes %dx%d; the CT hospitals' images are %dx%d", m.Height, m.Width, segSize, segSize)
		}
		if !jobspec.Segments(spec) {
			return Summary{}, fmt.Errorf("the model (model.arch %s) does not segment: its last layer must output one %dx%d mask", spec.Model.Arch, segSize, segSize)
		}
	}
	work := filepath.Join(cfg.Out, "federation")
	if err := os.RemoveAll(work); err != nil {
		return Summary{}, err
	}
	sd, pooled, err := segSites(ctx, cfg, filepath.Join(work, "hospitals"), segSpec(cfg, nil))
	if err != nil {
		return Summary{}, err
	}
	fmt.Fprintf(cfg.Progress, "%d CT sites ready (%d training slices, %d held-out test slices, %dx%d)\n", len(sd.names), sd.train, sd.test.N, segSize, segSize)
	spec := segSpec(cfg, sd)
	if err := jobspec.Validate(spec); err != nil {
		return Summary{}, err
	}
	fed, err := Start(Options{Dir: work, Logger: cfg.Logger, Seed: cfg.Seed})
	if err != nil {
		return Summary{}, err
	}
	defer fed.Close()
	for i, name := range sd.names {
		if err := fed.AddSite(name, SiteOptions{Data: sd.data[i]}); err != nil {
			return Summary{}, err
		}
	}
	if err := fed.WaitSites(ctx, len(sd.names)); err != nil {
		return Summary{}, err
	}
	job, err := fed.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		return Summary{}, fmt.Errorf("submit job: %w", err)
	}
	sum := Summary{Task: TaskSegmentation, Sites: len(sd.names) - len(sd.validation), Strategy: spec.Aggregation.Strategy,
		SecureAggregation: spec.Privacy.SecureAggregation, Threshold: int(spec.Privacy.Threshold), Seed: cfg.Seed, JobID: job.Id,
		TrainExamples: sd.train, TestExamples: sd.test.N, SiteExamples: sd.counts, SitePositiveRate: sd.posRat, Dataset: "generated-ct"}
	model, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		return Summary{}, err
	}
	sum.Params = len(model.Weights())
	seg := &Segmentation{Size: segSize}
	untrained, err := diceOf(model, model.Weights(), sd.test)
	if err != nil {
		return Summary{}, err
	}
	seg.UntrainedDice = untrained.Dice
	final, err := follow(ctx, fed, job.Id, func(r *pb.RoundSummary) error {
		w, err := fetchModel(ctx, fed.Admin, fmt.Sprintf("%s@%d", job.Id, r.Round))
		if err != nil {
			return err
		}
		rep, err := diceOf(model, w, sd.test)
		if err != nil {
			return err
		}
		seg.DicePerRound = append(seg.DicePerRound, rep.Dice.Value)
		sum.PerRound = append(sum.PerRound, RoundMetrics{Round: int(r.Round), Seconds: r.Seconds, Sites: len(r.Contributors)})
		fmt.Fprintf(cfg.Progress, "round %2d/%d  sites %d/%d  test Dice %.3f [%.3f, %.3f]  (%.1fs)\n",
			r.Round, cfg.Rounds, len(r.Contributors), len(r.Participants), rep.Dice.Value, rep.Dice.Lower, rep.Dice.Upper, r.Seconds)
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	sum.State, sum.Reason, sum.RoundsCompleted, sum.ModelVersion = final.State, final.Reason, len(final.Rounds), final.ModelVersion
	sum.PublishedVersion = final.ModelVersion
	segValidation(final, &sum)
	if err := writeModelCard(ctx, fed, cfg.Out, final, &sum); err != nil {
		return Summary{}, err
	}
	if cfg.Serve > 0 {
		sum.ServeSummary = &ServeSummary{}
		if err := serveStudies(ctx, cfg, sum.PublishedVersion, sd.names[0], ctStudies, sum.ServeSummary); err != nil {
			sum.ServeError = err.Error()
		}
	}
	if final.State == "completed" {
		version := final.ModelVersion
		if version == "" {
			version = fmt.Sprintf("%s@%d", job.Id, len(final.Rounds)) // the gate rejected it: still the model to compare
		}
		w, err := fetchModel(ctx, fed.Admin, version)
		if err != nil {
			return Summary{}, err
		}
		rep, err := diceOf(model, w, sd.test)
		if err != nil {
			return Summary{}, err
		}
		seg.FederatedDice, seg.FederatedIoU = rep.Dice, rep.IoU
		if err := writeModel(cfg.Out, model, w, &sum); err != nil {
			return Summary{}, err
		}
	}
	if err := centralised(ctx, cfg, spec, pooled, sd.test, seg); err != nil {
		return Summary{}, err
	}
	fmt.Fprintf(cfg.Progress, "centralised (pooled data, %d epochs): test Dice %.3f [%.3f, %.3f]\n",
		seg.CentralisedEpochs, seg.CentralisedDice.Value, seg.CentralisedDice.Lower, seg.CentralisedDice.Upper)
	sum.Segmentation = seg
	return finish(ctx, fed, cfg.Out, job.Id, final, start, sum)
}

// centralised trains the baseline: the same model, initial weights and
// training settings as the job, on the training sites' data pooled, for
// rounds × local epochs epochs.
func centralised(ctx context.Context, cfg Config, spec *pb.JobSpec, pooled, test learning.Dataset, seg *Segmentation) error {
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		return err
	}
	tc := jobspec.TrainConfig(spec, nil)
	tc.Seed = cfg.Seed
	tc.Epochs, tc.Steps = int(spec.Rounds)*max(int(spec.Training.LocalEpochs), 1), 0
	res, err := m.Train(ctx, pooled, tc)
	if err != nil {
		return fmt.Errorf("centralised baseline: %w", err)
	}
	rep, err := diceOf(m, m.Weights(), test)
	if err != nil {
		return err
	}
	seg.CentralisedDice, seg.CentralisedIoU = rep.Dice, rep.IoU
	seg.CentralisedEpochs, seg.CentralisedSecs = tc.Epochs, res.Seconds
	return nil
}

// segValidation copies the validation sites' signed Dice (and every other
// metric of the receipts) for the last round they scored.
func segValidation(final *pb.Job, sum *Summary) {
	if g := final.Gate; g != nil {
		sum.Gate = Gate{State: g.State, Reasons: g.Reasons}
	} else if final.ModelVersion != "" {
		sum.Gate = Gate{State: "passed"}
	}
	for _, r := range final.Rounds {
		for _, v := range r.Validation {
			if sum.Validation == nil {
				sum.Validation = map[string]SiteValidation{}
			}
			sum.Validation[v.Site] = SiteValidation{Examples: int(v.Examples), Metrics: v.Metrics, Lower: v.Lower, Upper: v.Upper}
		}
	}
}
