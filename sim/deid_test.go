package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/sim/synth"
)

// TestNoIdentifierLeaves generates hospitals whose DICOM files carry known
// fake patient identifiers, runs a whole secure job from them, and checks
// that none of those values appears in anything the coordinator stored
// (its database holds everything it received), in what the sites sent,
// in any log line, or in the run's reports.
func TestNoIdentifierLeaves(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole simulated job")
	}
	out := t.TempDir()
	logs := &testenv.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{Sites: 3, Rounds: 2, Seed: 5, Out: out, ImagesPerSite: 24, SecureAggregation: "mhe", Logger: logger, Progress: logs}
	sum, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// The identifiers that went into the files: patient fields from the
	// generator, UIDs read back from every file written.
	var secrets []string
	for i, h := range synth.Hospitals(cfg.Sites, cfg.Seed) {
		h.N = cfg.ImagesPerSite
		samples, err := synth.Generate(h, cfg.Seed+int64(i))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			secrets = append(secrets, s.Patient.Name, s.Patient.ID, s.Patient.Accession)
			if s.Patient.BirthDate != "" {
				secrets = append(secrets, s.Patient.BirthDate)
			}
		}
	}
	files := 0
	err = filepath.WalkDir(filepath.Join(out, "federation", "hospitals"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".dcm") {
			return err
		}
		im, err := imaging.ReadFile(p)
		if err != nil {
			t.Errorf("generated file %s unreadable: %v", p, err)
			return nil
		}
		files++
		secrets = append(secrets, im.StudyInstanceUID, im.SeriesInstanceUID, im.SOPInstanceUID)
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walk generated files: %d files, %v", files, err)
	}

	// Everything that left a site or was recorded anywhere.
	var haystacks []struct {
		name string
		data []byte
	}
	add := func(name string, data []byte) {
		haystacks = append(haystacks, struct {
			name string
			data []byte
		}{name, data})
	}
	fedDir := filepath.Join(out, "federation")
	add("coordinator database", mustRead(t, filepath.Join(fedDir, "coordinator.db")))
	err = filepath.WalkDir(filepath.Join(fedDir, "sites"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, string(filepath.Separator)+"pending"+string(filepath.Separator)) {
			add("upload "+filepath.Base(p), mustRead(t, p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	add("summary.json", mustRead(t, filepath.Join(out, "summary.json")))
	summary, _ := json.Marshal(sum)
	add("summary", summary)
	add("logs", logs.Bytes())

	checked := 0
	for _, s := range secrets {
		if len(s) < 6 {
			continue // too short to be a meaningful identifier
		}
		checked++
		for _, h := range haystacks {
			if bytes.Contains(h.data, []byte(s)) {
				t.Errorf("identifier %q found in %s", s, h.name)
			}
		}
	}
	if checked < 100 || len(haystacks) < 5 {
		t.Fatalf("checked only %d identifiers in %d places", checked, len(haystacks))
	}
	if !bytes.Contains(haystacks[len(haystacks)-1].data, []byte("round")) {
		t.Fatal("the captured logs are empty: the test would not see a leak")
	}
	t.Logf("%d identifiers from %d files absent from %d places (job %s, secure aggregation %s)", checked, files, len(haystacks), sum.JobID, sum.SecureAggregation)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
