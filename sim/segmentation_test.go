package sim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestSegmentationFederated runs a federated U-Net job under multiparty
// homomorphic encryption on two generated CT hospitals, with a third that
// only validates: the job completes, the federated model segments clearly
// better than the untrained one (Dice at least 0.3 higher: with these
// settings seeds 1 to 6 gave 0.01..0.12 untrained, 0.64..0.74 federated,
// 0.61..0.76 at the validation site; early rounds can oscillate, hence
// six), the validation site's signed receipt carries Dice with its
// interval, and summary.json holds the federated and centralised Dice.
// About 15 s on two cores.
func TestSegmentationFederated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out := t.TempDir()
	sum, err := Run(ctx, Config{Task: TaskSegmentation, Sites: 3, ValidationSites: 1, Rounds: 6, ImagesPerSite: 48, BatchSize: 8, LocalEpochs: 2,
		Seed: 1, Out: out, SecureAggregation: "mhe", GateMinDice: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	sg := sum.Segmentation
	if sum.State != "completed" || sum.RoundsCompleted != 6 || sg == nil || sum.Params == 0 {
		t.Fatalf("state %s, %d rounds, segmentation %+v", sum.State, sum.RoundsCompleted, sg)
	}
	if sg.FederatedDice.Value < sg.UntrainedDice.Value+0.3 {
		t.Fatalf("federated Dice %.3f, untrained %.3f: want at least 0.3 better", sg.FederatedDice.Value, sg.UntrainedDice.Value)
	}
	if sg.CentralisedDice.Value < sg.UntrainedDice.Value+0.3 {
		t.Fatalf("centralised Dice %.3f, untrained %.3f", sg.CentralisedDice.Value, sg.UntrainedDice.Value)
	}
	if sum.Gate.State != "passed" || sum.PublishedVersion == "" {
		t.Fatalf("gate %+v, published %q", sum.Gate, sum.PublishedVersion)
	}
	v, ok := sum.Validation["ct-hospital-3"]
	if !ok {
		t.Fatalf("no receipt from the validation site: %+v", sum.Validation)
	}
	d, lo, hi := v.Metrics["dice"], v.Lower["dice"], v.Upper["dice"]
	if v.Examples == 0 || !(lo <= d && d <= hi) || d < sg.UntrainedDice.Value+0.3 || hi-lo <= 0 {
		t.Fatalf("validation receipt: %d examples, dice %.3f [%.3f, %.3f]", v.Examples, d, lo, hi)
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Task         string
		Segmentation struct {
			Federated   struct{ Value float64 } `json:"federated_dice"`
			Centralised struct{ Value float64 } `json:"centralised_dice"`
		}
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if file.Task != "segmentation" || file.Segmentation.Federated.Value != sg.FederatedDice.Value || file.Segmentation.Centralised.Value != sg.CentralisedDice.Value {
		t.Fatalf("summary.json: %+v", file)
	}
}

// TestSegmentationRefusesClassificationOptions: options that a
// segmentation run would ignore are refused.
func TestSegmentationRefusesClassificationOptions(t *testing.T) {
	for _, c := range []Config{
		{Task: TaskSegmentation, GateMinAUC: 0.8, Out: t.TempDir()},
		{Task: TaskSegmentation, Dataset: "x.npz", Out: t.TempDir()},
		{Task: "detection", Out: t.TempDir()},
		{GateMinDice: 0.5, Out: t.TempDir()},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestSegmentationRefusesWhatItDoesNotDo: options a segmentation run would
// otherwise accept and ignore are refused with the reason.
func TestSegmentationRefusesWhatItDoesNotDo(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{DPEpsilon: 4}, "--dp-epsilon"},
		{Config{GateMinAUC: 0.8}, "--gate-min-dice"},
		{Config{TuneLocalEpochs: []uint32{1, 2}}, "does not tune yet"},
		{Config{SegModel: &pb.ModelSpec{Arch: jobspec.ArchResNet18, Channels: 1, Classes: 2}}, "(model.arch resnet18) does not segment"},
		{Config{SegModel: &pb.ModelSpec{Arch: jobspec.ArchUNet, Channels: 1, Height: 64, Width: 64}}, "the segmentation model takes 64x64"},
	} {
		c.cfg.Task, c.cfg.Out = TaskSegmentation, t.TempDir()
		if _, err := Run(context.Background(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want a refusal naming %s", c.cfg, err, c.want)
		}
	}
	if _, err := Run(context.Background(), Config{Out: t.TempDir(), SegModel: &pb.ModelSpec{Arch: jobspec.ArchUNet}}); err == nil ||
		!strings.Contains(err.Error(), "a segmentation model is for the segmentation task") {
		t.Errorf("a segmentation model on a classification run: %v", err)
	}
}

// TestGraphSegmentationFederated: the declared U-Net of
// deploy/examples/graph-unet.yaml trains in a federated segmentation job
// under secure aggregation like the built-in unet: the validation site
// scores Dice, the gate passes and the version is published.
func TestGraphSegmentationFederated(t *testing.T) {
	data, err := os.ReadFile("../deploy/examples/graph-unet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := jobspec.ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Config{Task: TaskSegmentation, Sites: 3, ValidationSites: 1, Rounds: 4, ImagesPerSite: 32, BatchSize: 8, LocalEpochs: 2,
		LearningRate: 0.003, Seed: 1, Out: t.TempDir(), SecureAggregation: "mhe", GateMinDice: 0.05, SegModel: m})
	if err != nil {
		t.Fatal(err)
	}
	sg := sum.Segmentation
	if sum.State != "completed" || sum.RoundsCompleted != 4 || sg == nil {
		t.Fatalf("state %s, %d rounds, segmentation %+v", sum.State, sum.RoundsCompleted, sg)
	}
	t.Logf("graph U-Net: %d parameters, Dice federated %.3f, centralised %.3f, untrained %.3f", sum.Params, sg.FederatedDice.Value,
		sg.CentralisedDice.Value, sg.UntrainedDice.Value)
	if sg.FederatedDice.Value < sg.UntrainedDice.Value+0.2 {
		t.Errorf("federated Dice %.3f, untrained %.3f: want at least 0.2 better", sg.FederatedDice.Value, sg.UntrainedDice.Value)
	}
	if v := sum.Validation["ct-hospital-3"]; sum.Gate.State != "passed" || sum.PublishedVersion == "" || v.Metrics["dice"] <= sg.UntrainedDice.Value {
		t.Errorf("gate %+v, published %q, validation %+v", sum.Gate, sum.PublishedVersion, v)
	}
}
