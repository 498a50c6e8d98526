package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/evaluation"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestDriftConfig: agent.yaml's drift and feedback sections reach the
// agent's configuration, relative folders resolved against agent.yaml's.
func TestDriftConfig(t *testing.T) {
	t.Setenv("CONCORD_KEY_PASSPHRASE", "a passphrase long enough for the test")
	for _, tc := range []struct {
		name     string
		yaml     string
		err      string
		interval time.Duration
		min      int
	}{
		{"none", "", "", 0, 0},
		{"folders only", "drift:\n  dir: arriving\nfeedback:\n  dir: corrections\n", "", 0, 0},
		{"all keys", "drift: {dir: arriving, interval: 90m, min_examples: 50}\nfeedback: {dir: corrections}\n", "", 90 * time.Minute, 50},
		{"too often", "drift: {dir: arriving, interval: 5s}\n", "drift.interval 5s: give 1m0s or more", 0, 0},
		{"not a duration", "drift: {dir: arriving, interval: hourly}\n", `"hourly" is not a duration (write e.g. 30m or 1h)`, 0, 0},
		{"negative minimum", "drift: {dir: arriving, min_examples: -1}\n", "drift.min_examples -1", 0, 0},
		{"settings without a folder", "drift: {interval: 2h}\n", "drift.dir is not", 0, 0},
		{"misspelt key", "drift: {dir: arriving, min_example: 5}\n", "unknown key min_example", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := siteKit(t)
			withConfig(t, path, func(s string) string { return s + tc.yaml })
			cfg, _, closeFn, err := load(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			base := filepath.Dir(path)
			wantDir, wantFeedback := "", ""
			if strings.Contains(tc.yaml, "arriving") {
				wantDir, wantFeedback = filepath.Join(base, "arriving"), filepath.Join(base, "corrections")
			}
			if cfg.Drift.Dir != wantDir || cfg.Drift.Interval != tc.interval || cfg.Drift.MinExamples != tc.min || cfg.Feedback.Dir != wantFeedback {
				t.Errorf("drift %+v, feedback %+v", cfg.Drift, cfg.Feedback)
			}
			if d, ok := cfg.Data.(*siteagent.DICOMFolder); !ok || d.Feedback != wantFeedback {
				t.Errorf("the training data does not include the feedback folder: %+v", cfg.Data)
			}
		})
	}
}

// TestDriftCommand: `site-agent drift` reads an agent's state offline and
// says when there is nothing yet; the report prints with its verdicts.
func TestDriftCommand(t *testing.T) {
	t.Setenv("CONCORD_KEY_PASSPHRASE", "a passphrase long enough for the test")
	path := siteKit(t)
	cfg, _, closeFn, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	a, err := siteagent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"drift", "--config", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "no drift baseline yet") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"drift", "--state", cfg.StateDir, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errb.String())
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || string(got["baseline"]) != "null" || string(got["last"]) != "null" {
		t.Fatalf("--json with nothing recorded: %s (%v)", out.String(), err)
	}

	out.Reset()
	st := siteagent.DriftState{
		Baseline: &siteagent.Baseline{Job: "job-7", Examples: 120, PipelineHash: strings.Repeat("ab", 32),
			Intensity:  evaluation.Histogram{Edges: []float64{0.5}, Counts: []float64{700, 800}},
			Categories: map[string]evaluation.Frequencies{"sex": {"F": 60, "M": 60}}},
		Last: &pb.DriftReport{BaselineJob: "job-7", BaselineExamples: 120, Examples: 45, Feedback: 3, MaxPsi: 0.31,
			Psi: map[string]float64{"intensity": 0.31, "sex": 0.02, "model": 0.15}},
	}
	writeDrift(&out, st)
	for _, want := range []string{"baseline: job job-7, 120 examples", "intensity: 2 bins over 1500 sampled pixels", "sex: F 60, M 60",
		"45 arriving images against baseline job job-7 (120 examples), 3 corrections", "intensity  0.3100  significant shift",
		"model      0.1500  moderate shift", "sex        0.0200  stable", "max PSI 0.3100: significant"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
