// Command concord-sim runs a whole federation on this machine: a
// coordinator and N site agents in one process over real gRPC with mutual
// TLS, on generated hospital data (real DICOM files through the imaging
// pipeline) or a partitioned MedMNIST set.
//
//	concord-sim --sites 3 --rounds 10 --seed 1 --out demo-out
//	concord-sim --dataset ../shared/data/medmnist/pneumoniamnist.npz --sites 5 --partition dirichlet:0.5 --json
//	concord-sim --task segmentation --sites 3 --rounds 10 --out seg-out
//	concord-sim --model resnet18 --images 160 --size 224 --rounds 5 --out resnet-out
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/internal/version"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/sim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var command = &cli.Command{Name: "concord-sim", Args: "[--sites N] [--rounds N] [--dataset FILE.npz] [--out DIR] [--json] [flags]",
	Help: "Run a whole federation on this machine: a coordinator and N site agents in one process over\n" +
		"real gRPC with mutual TLS, on generated hospital data or a partitioned MedMNIST set.\n" +
		"With --json, the summary (the same object as OUT/summary.json) is the last line of stdout."}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := command
	fs := cmd.NewFlagSet(stderr)
	var c sim.Config
	fs.IntVar(&c.Sites, "sites", 3, "number of hospitals")
	fs.IntVar(&c.ValidationSites, "validation-sites", 1, "how many of the --sites hospitals only validate: they never train, score every round's model and sign their results (with --dataset: on the test split)")
	tuneLR := fs.String("tune-server-lr", "", "tune the server learning rate among these comma-separated values (the job spec's tuning.server_lr; needs --strategy fedadam, fedyogi or fedadagrad and --validation-sites)")
	tuneEpochs := fs.String("tune-local-epochs", "", "tune the local epochs among these comma-separated values (tuning.local_epochs)")
	fs.IntVar(&c.TuneRounds, "tune-rounds", 3, "with --tune-*: rounds of a first-rung trial (tuning.rounds)")
	fs.Float64Var(&c.GateMinAUC, "gate-min-auc", 0, "publish only if every validation site measures at least this AUC (0 = no gate)")
	fs.BoolVar(&c.ScoreLocalModels, "score-local-models", false, "also score each training site's last local model at the validation sites (the cross-site matrix; needs --secure-aggregation none)")
	fs.IntVar(&c.Rounds, "rounds", 10, "federated rounds")
	fs.Int64Var(&c.Seed, "seed", 1, "seed: the same seed gives the same run")
	fs.StringVar(&c.Partition, "partition", "iid", "how --dataset is split among sites: iid or dirichlet:ALPHA")
	fs.StringVar(&c.Dataset, "dataset", "", "a MedMNIST .npz (binary task); without it, generated hospitals write DICOM files")
	fs.StringVar(&c.Out, "out", "sim-out", "output folder: final model, learning curve, summary.json")
	fs.StringVar(&c.SecureAggregation, "secure-aggregation", "mhe", "mhe (multiparty homomorphic encryption) or none")
	fs.IntVar(&c.Threshold, "threshold", 0, "sites needed to decrypt (t of N); 0 = all")
	fs.StringVar(&c.Strategy, "strategy", "fedavg", "fedavg, fedprox, fedadam, fedyogi, fedadagrad (median, trimmed-mean need --secure-aggregation none)")
	fs.Float64Var(&c.ServerLR, "server-lr", 0, "server learning rate of fedadam/fedyogi/fedadagrad (0 = default)")
	fs.Float64Var(&c.ProxMu, "prox-mu", 0, "FedProx mu (0 = default)")
	fs.IntVar(&c.LocalEpochs, "local-epochs", 1, "local epochs per round")
	fs.IntVar(&c.LocalSteps, "local-steps", 0, "local optimiser steps per round, instead of --local-epochs (the job's training.local_steps)")
	fs.IntVar(&c.BatchSize, "batch", 32, "local batch size")
	fs.Float64Var(&c.LearningRate, "lr", 0, "local learning rate (0 = default for the optimiser)")
	fs.IntVar(&c.ImagesPerSite, "images", 160, "images per generated hospital")
	fs.Float64Var(&c.DPEpsilon, "dp-epsilon", 0, "differential privacy (at --dp-level) spending at most this epsilon over the job (0 = off); each site's budget is the same")
	fs.Float64Var(&c.DPDelta, "dp-delta", 1e-5, "delta of --dp-epsilon")
	fs.Float64Var(&c.DPClip, "dp-clip", 1, "clipping norm of --dp-epsilon: per-example gradient (record level) or site update (site level)")
	fs.StringVar(&c.DPLevel, "dp-level", "record", "level of --dp-epsilon: record (DP-SGD at every site) or site (noise on each site's update)")
	fs.Float64Var(&c.DPAdaptiveQuantile, "dp-adaptive-quantile", 0, "site level: adapt the update clip to this quantile of update norms (0 = fixed clip)")
	fs.IntVar(&c.Serve, "serve", 0, "after publishing, send N generated studies by STOW-RS to the first hospital serving the version; needs --serve-fhir")
	fs.StringVar(&c.ServeFHIR, "serve-fhir", "", "base `URL` of the FHIR R4 endpoint --serve delivers results to (e.g. node internal/testfhir/server.mjs --port 8103 → http://127.0.0.1:8103/fhir/R4)")
	fs.StringVar(&c.Task, "task", sim.TaskClassification, "classification, or segmentation: a federated U-Net on generated CT hospitals (--images slices each), with the same training on the pooled data for comparison")
	fs.StringVar(&c.Model, "model", "cnn", "classifier: cnn, resnet18 or resnet34 (GroupNorm ResNets, model.arch)")
	fs.IntVar(&c.ModelWidth, "model-width", 0, "the model's base width (model.base_width; 0 = the arch's default: 16 for cnn, 64 for resnets)")
	segModel := fs.String("model-spec", "", "--task segmentation: a job `file` whose model: section declares the segmenter (model.arch graph) trained instead of the unet")
	fs.IntVar(&c.Size, "size", 32, "generated hospitals: the model's input side in pixels (resnets need a multiple of 32)")
	fs.Float64Var(&c.GateMinDice, "gate-min-dice", 0, "segmentation: publish only if every validation site measures at least this Dice (0 = no gate)")
	asJSON := fs.Bool("json", false, "print a JSON summary as the last line of stdout")
	verbose := fs.Bool("v", false, "log the federation's events to stderr")
	showVersion := fs.Bool("version", false, "print the version and exit")
	pos, code, ok := cmd.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := cmd.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	if *showVersion {
		fmt.Fprintln(stdout, "concord-sim", version.Of(version.Default))
		return 0
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["local-epochs"] && set["local-steps"] {
		return cmd.Usagef(stderr, "--local-epochs and --local-steps are both given: set one local budget")
	}
	if set["local-steps"] && (c.LocalSteps < 1 || c.LocalSteps > 100000) {
		return cmd.Usagef(stderr, "--local-steps %d: want 1..100000", c.LocalSteps)
	}
	if c.Serve < 0 || c.Serve > 100000 || c.Serve > 0 && c.ServeFHIR == "" {
		return cmd.Usagef(stderr, "--serve N takes 0..100000 studies and needs --serve-fhir URL")
	}
	if c.Model != "cnn" && c.Model != "resnet18" && c.Model != "resnet34" {
		return cmd.Usagef(stderr, "--model %q: want cnn, resnet18 or resnet34", c.Model)
	}
	if c.Size < 8 || c.Size > 1024 || c.ModelWidth < 0 || c.ModelWidth > 1024 {
		return cmd.Usagef(stderr, "--size %d, --model-width %d: want a size of 8..1024 and a width of 0..1024", c.Size, c.ModelWidth)
	}
	var err error
	if c.TuneServerLR, err = list(*tuneLR, parseFloat); err != nil {
		return cmd.Usagef(stderr, "--tune-server-lr: %v", err)
	}
	if c.TuneLocalEpochs, err = list(*tuneEpochs, parseUint32); err != nil {
		return cmd.Usagef(stderr, "--tune-local-epochs: %v", err)
	}
	if set["tune-rounds"] && len(c.TuneServerLR)+len(c.TuneLocalEpochs) == 0 {
		return cmd.Usagef(stderr, "--tune-rounds needs --tune-server-lr or --tune-local-epochs")
	}
	if *segModel != "" {
		if c.Task != sim.TaskSegmentation {
			return cmd.Usagef(stderr, "--model-spec declares a segmenter: it needs --task segmentation")
		}
		data, err := os.ReadFile(*segModel)
		if err != nil {
			return cmd.Usagef(stderr, "--model-spec: %v", err)
		}
		if c.SegModel, err = jobspec.ParseModel(data); err != nil {
			return cmd.Usagef(stderr, "--model-spec %s: %v", *segModel, err)
		}
	}
	c.Progress = stderr
	if !*asJSON {
		c.Progress = stdout
	}
	if *verbose {
		c.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	sum, err := sim.Run(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "concord-sim: %v\n", err)
		if sum.JobID == "" {
			return 1
		}
	}
	if *asJSON {
		b, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(b))
	} else if sg := sum.Segmentation; sg != nil {
		fmt.Fprintf(stdout, "\n%d rounds, %d sites, %s, secure aggregation %s: test Dice federated %.3f [%.3f, %.3f], centralised %.3f [%.3f, %.3f], untrained %.3f\nmodel %s, results in %s (%.0fs)\n",
			sum.RoundsCompleted, sum.Sites, sum.Strategy, sum.SecureAggregation, sg.FederatedDice.Value, sg.FederatedDice.Lower, sg.FederatedDice.Upper,
			sg.CentralisedDice.Value, sg.CentralisedDice.Lower, sg.CentralisedDice.Upper, sg.UntrainedDice.Value, sum.ModelVersion, c.Out, sum.WallSeconds)
	} else {
		fmt.Fprintf(stdout, "\n%d rounds, %d sites, %s, secure aggregation %s: test AUC %.3f, accuracy %.3f, sensitivity %.3f, specificity %.3f, F1 %.3f\nmodel %s, results in %s (%.0fs)\n",
			sum.RoundsCompleted, sum.Sites, sum.Strategy, sum.SecureAggregation, sum.Metrics.AUC, sum.Metrics.Accuracy,
			sum.Metrics.Sensitivity, sum.Metrics.Specificity, sum.Metrics.F1, sum.ModelVersion, c.Out, sum.WallSeconds)
	}
	if err != nil {
		return 1
	}
	return 0
}

// list reads comma-separated values ("0.003,0.01", "1,2"); "" is none.
func list[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' }) {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

func parseUint32(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}
