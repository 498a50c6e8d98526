package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/learning"
)

// sharedFile finds shared data via $CONCORD_SHARED or ../shared next to the
// repository; missing data fails in CI and skips elsewhere.
func sharedFile(t *testing.T, rel string) string {
	return testenv.Shared(t, rel)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestTrainBreastMNISTJSON(t *testing.T) {
	data := sharedFile(t, "data/medmnist/breastmnist.npz")
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--data", data, "--epochs", "2", "--json", "--seed", "3", "--batch", "64", "--width", "16", "--augment"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep TrainReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out.String())
	}
	if rep.Dataset != "breastmnist.npz" || rep.Model != "cnn" || rep.Epochs != 2 || rep.TrainSeconds <= 0 || rep.SamplesPerS <= 0 ||
		rep.Norm != "group" || rep.Layout != "concord.cnn/2" || rep.EMA != 0.99 {
		t.Fatalf("report %+v", rep)
	}
	// Two epochs are far from the paper's figure but well above chance.
	if rep.Test.AUC < 0.55 || rep.Test.AUC > 1 || rep.Test.Accuracy < 0.5 || rep.Test.Accuracy > 1 {
		t.Fatalf("test metrics %+v are not those of a trained model", rep.Test)
	}
	if !strings.Contains(errb.String(), "epoch 2/2") {
		t.Fatalf("no progress on stderr:\n%s", errb.String())
	}
}

// TestTrainStepBudget: a step budget validates 100 times over the run (every
// step at 40 steps) and keeps the best step; an unset width, batch and
// augmentation come from learning.Defaults (546 images: width 24, batch 32).
func TestTrainStepBudget(t *testing.T) {
	data := sharedFile(t, "data/medmnist/breastmnist.npz")
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--data", data, "--steps", "40", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep TrainReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out.String())
	}
	if rep.Steps != 40 || rep.Epochs != 0 || rep.BestStep < 1 || rep.BestStep > 40 || rep.BestEpoch != 0 ||
		rep.Width != 24 || rep.Batch != 32 || rep.Augment {
		t.Fatalf("report %+v", rep)
	}
	if rep.Test.AUC < 0.55 || rep.Test.AUC > 1 {
		t.Fatalf("test metrics %+v are not those of a trained model", rep.Test)
	}
	if !strings.Contains(errb.String(), "step 40  val auc") || !strings.Contains(errb.String(), "step 1  val auc") {
		t.Fatalf("no validation at steps 1 and 40 on stderr:\n%s", errb.String())
	}
}

func TestTrainBadArguments(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.npz")
	os.WriteFile(empty, []byte("not a zip"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "--data is required"},
		{[]string{"--data", empty, "--model", "vit"}, 2, "not available"},
		{[]string{"--data", empty, "--epochs", "0"}, 2, "at least 1"},
		{[]string{"--data", empty, "--steps", "0"}, 2, "--steps must be at least 1"},
		{[]string{"--data", empty, "--steps", "10", "--epochs", "2"}, 2, "--epochs and --steps are both given"},
		{[]string{"--data", empty, "--ema", "1"}, 2, "--ema must be"},
		{[]string{"--data", empty}, 1, "not a readable MedMNIST npz"},
		{[]string{"--data", empty, "--nonsense"}, 2, "flag provided but not defined"},
		{[]string{"--data", empty, "--tune", "--lr", "0.1"}, 2, "--lr is chosen by --tune"},
		{[]string{"--data", empty, "--budget", "10"}, 2, "need --tune"},
		{[]string{"--data", empty, "--tune", "--budget", "0"}, 2, "--budget must be > 0"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"train"}, c.args...), &out, &errb); code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("Train(%q) = %d, %q; want %d and %q", c.args, code, errb.String(), c.code, c.msg)
		}
	}
}

func TestUNetOnSharedCTSeg(t *testing.T) {
	ct := sharedFile(t, "data/dicom/dcmqi/ct-3slice")
	seg := sharedFile(t, "data/dicom/dcmqi/liver-seg.dcm")
	steps := "40"
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--model", "unet", "--ct", ct, "--seg", seg, "--size", "64", "--steps", steps, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep SegReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Slices != 3 || len(rep.SliceDice) != 3 {
		t.Fatalf("report %+v: want the 3 segmented slices", rep)
	}
	if rep.HeldOutDice < 0.85 || rep.TrainDice < 0.85 {
		t.Fatalf("dice train %.3f, held-out %.3f; want >= 0.85", rep.TrainDice, rep.HeldOutDice)
	}
}

func TestUNetBadArguments(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--model", "unet"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--ct") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	errb.Reset()
	dir := t.TempDir()
	if code := run([]string{"train", "--model=unet", "--ct", dir, "--seg", filepath.Join(dir, "none.dcm")}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "segmentation") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestTuneBreastMNIST: a tiny search (6 candidates, 5 steps at rung 0)
// starts from the no-flag recipe, prints its table and reports the test
// split of the trial chosen on validation.
func TestTuneBreastMNIST(t *testing.T) {
	data := sharedFile(t, "data/medmnist/breastmnist.npz")
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--data", data, "--tune", "--tune-trials", "6", "--tune-steps", "5", "--budget", "300", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep TuneReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out.String())
	}
	// 6 at 5 steps, then the best 2 at 15, which keeps one: the choice.
	if len(rep.Trials) != 8 || rep.Best.Rung != 1 || rep.Best.Steps != 15 || rep.Stopped {
		t.Fatalf("report %+v", rep)
	}
	for _, tr := range rep.Trials {
		if tr.ID == 0 && tr.Candidate != learning.RecipeCandidate(learning.Defaults(546)) {
			t.Errorf("candidate 0 is %+v, want the no-flag recipe", tr.Candidate)
		}
	}
	if rep.Test.AUC <= 0 || rep.Test.AUC > 1 || !strings.Contains(errb.String(), "search table") {
		t.Fatalf("test %+v, stderr:\n%s", rep.Test, errb.String())
	}
}
