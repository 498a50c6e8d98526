package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/concord-fl/concord/learning"
)

// TestResNetFederated runs a resnet18 (base width 8, 64×64 input) job
// under multiparty homomorphic encryption on generated hospitals: the job
// completes both rounds, every parameter of the declared layout went
// through the encrypted aggregation, and the published model's manifest is
// the expanded graph. About 3 s on two cores.
func TestResNetFederated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := t.TempDir()
	sum, err := Run(ctx, Config{Model: "resnet18", ModelWidth: 8, Size: 64, Sites: 3, Rounds: 2, ImagesPerSite: 32, BatchSize: 8,
		Seed: 1, Out: out, SecureAggregation: "mhe"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := learning.ParamCount(learning.Spec{Arch: "resnet18", Channels: 1, Height: 64, Width: 64, Classes: 2, BaseWidth: 8})
	if err != nil {
		t.Fatal(err)
	}
	if sum.State != "completed" || sum.RoundsCompleted != 2 || sum.Params != int(want) || sum.BytesPerParam <= 0 {
		t.Fatalf("state %s (%s), %d rounds, %d parameters (want %d), %.2f bytes per parameter", sum.State, sum.Reason,
			sum.RoundsCompleted, sum.Params, want, sum.BytesPerParam)
	}
	raw, err := os.ReadFile(filepath.Join(out, "model.layout.json"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := learning.ParseLayout(raw)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != learning.GraphVersion || l.Family != "resnet18" || len(l.Layers) == 0 || l.Total != int(want) {
		t.Fatalf("published layout %s family %q with %d layers and %d parameters", l.Version, l.Family, len(l.Layers), l.Total)
	}
}
