package siteagent

import (
	"context"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestExternalTrainerTrainsThroughThePipeline: a site with only a DICOM
// folder and the PyTorch trainer (on the CPU) trains federated rounds on
// the job's pipeline output, with no .npz anywhere: the agent sends the
// shards once, a second round re-sends none (the trainer's cache holds
// them), and a job with another pipeline sends its own. Costs about 10 s
// (trainer start-up and three one-epoch rounds on 48 images).
func TestExternalTrainerTrainsThroughThePipeline(t *testing.T) {
	cache := t.TempDir()
	addr := startPyTrainer(t, cache)
	tr, err := NewExternalTrainer(context.Background(), extrainer.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })

	p, cfg := startPeer(t)
	dir := writeValidationFolder(t)
	cfg.Data, cfg.Trainer = &DICOMFolder{Dir: dir, Classes: []string{"normal", "lesion"}}, tr
	job := func(pipeline string) *pb.JobSpec {
		s, err := jobspec.Parse([]byte("rounds: 3\nmin_sites: 1\nmodel: {base_width: 2}\n" +
			"training: {local_epochs: 1, batch_size: 16, optimizer: sgd, learning_rate: 0.05}\n" +
			"privacy: {secure_aggregation: none}\n" + pipeline))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	spec := job("")
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	global := m.Weights()
	_, coord, _ := ed25519.GenerateKey(cryptorand.Reader)
	got, failed := make(chan received, 4), make(chan received, 4)
	p.serve(learning.EncodeWeights(global), uploadServer(coord, 0, failed, got))
	runAgent(t, cfg)
	<-p.hello

	round := func(spec *pb.JobSpec, job string, n int) {
		t.Helper()
		p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: dpTask(spec, job, n, len(global))}}
		select {
		case r := <-got:
			update := learning.DecodeWeightsInto(nil, r.data)
			changed := false
			for _, v := range update {
				changed = changed || v != 0
			}
			if len(update) != len(global) || !changed {
				t.Fatalf("round %d of %s: update of %d values (want %d), non-zero %v", n, job, len(update), len(global), changed)
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("round %d of %s: no upload", n, job)
		}
	}
	round(spec, "job-a", 1)
	first := tr.ShardsSent()
	if first != 1 {
		t.Fatalf("first round sent %d shards, want 1 (48 examples)", first)
	}
	round(spec, "job-a", 2)
	if n := tr.ShardsSent(); n != first {
		t.Errorf("second round with the same pipeline and data sent %d more shards, want none", n-first)
	}
	round(job("pipeline: {normalise: minmax}\n"), "job-b", 1)
	if n := tr.ShardsSent(); n != first+1 {
		t.Errorf("a job with another pipeline sent %d shards, want 1", n-first)
	}

	// Only shards reached the trainer's node: no .npz, no DICOM, no
	// identifier in what it stores.
	err = filepath.WalkDir(cache, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(path, ".shard") {
			t.Errorf("trainer cache holds %s, want only shards", path)
		}
		b, err := os.ReadFile(path)
		if err == nil && (strings.Contains(string(b), "MRN0") || strings.Contains(string(b), "ZZTEST")) {
			t.Errorf("%s carries a patient identifier", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
