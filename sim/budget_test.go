package sim

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
)

// TestLocalStepsReachTraining: a job whose local budget is
// training.local_steps trains that many steps at each site. With 24 images
// a site and batch 32 an epoch is one step, so 3 local steps must publish a
// different model than 1 local epoch from the same seed, and 1 local step
// the same model as 1 local epoch.
func TestLocalStepsReachTraining(t *testing.T) {
	if testing.Short() {
		t.Skip("three simulated jobs")
	}
	model := func(epochs, steps int) []byte {
		out := t.TempDir()
		sum, err := Run(context.Background(), Config{Sites: 3, Rounds: 1, Seed: 5, Out: out, ImagesPerSite: 24,
			SecureAggregation: "none", LocalEpochs: epochs, LocalSteps: steps})
		if err != nil {
			t.Fatal(err)
		}
		if sum.RoundsCompleted != 1 {
			t.Fatalf("epochs %d, steps %d: completed %d rounds (%s)", epochs, steps, sum.RoundsCompleted, sum.Reason)
		}
		return mustRead(t, filepath.Join(out, "model.f32"))
	}
	epoch, one, three := model(1, 0), model(0, 1), model(0, 3)
	if !bytes.Equal(epoch, one) {
		t.Error("1 local step published another model than 1 local epoch of one step")
	}
	if bytes.Equal(epoch, three) {
		t.Error("3 local steps published the same model as 1 local step: the step budget did not reach training")
	}
}
