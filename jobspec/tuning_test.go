package jobspec

import (
	"strings"
	"testing"
)

const tuneJob = `name: tuned
rounds: 12
sites: [a, b, c]
validation_sites: [v]
aggregation: {strategy: fedadam, server_lr: 0.01}
training: {local_epochs: 1}
`

func TestTuningSpec(t *testing.T) {
	s, err := Parse([]byte(tuneJob + "tuning: {server_lr: [0.003, 0.01, 0.03], local_epochs: [1, 2], rounds: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Tuning.Eta != DefaultTuneEta {
		t.Errorf("eta %d, want the default %d", s.Tuning.Eta, DefaultTuneEta)
	}
	c := TuneCandidates(s)
	if len(c) != 6 || c[0] != (TuneCandidate{0.003, 1}) || c[5] != (TuneCandidate{0.03, 2}) {
		t.Errorf("candidates %v", c)
	}
	s, err = Parse([]byte(tuneJob + "tuning: {local_epochs: [1, 3], rounds: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := TuneCandidates(s); len(c) != 2 || c[1] != (TuneCandidate{0.01, 3}) {
		t.Errorf("candidates keep the spec's server_lr: %v", c)
	}
}

func TestTuningSpecErrors(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"tuning: {rounds: 2}", "tuning lists no candidates"},
		{"tuning: {local_epochs: [2], rounds: 2}", "tuning has one candidate"},
		{"tuning: {server_lr: [1, 2, 3, 4, 5], local_epochs: [1, 2, 3, 4], rounds: 2}", "tuning has 20 candidates"},
		{"tuning: {server_lr: [0.01, 0.01], rounds: 2}", "tuning lists a value twice"},
		{"tuning: {server_lr: [0.01, -1], rounds: 2}", "tuning.server_lr is -1"},
		{"tuning: {local_epochs: [1, 500], rounds: 2}", "tuning.local_epochs is 500: at most 100"},
		{"tuning: {local_epochs: [1, 2], rounds: 12}", "tuning.rounds is 12: a first-rung trial takes at least 1 round and fewer than the job's 12"},
		{"tuning: {local_epochs: [1, 2], rounds: 2, eta: 1}", "tuning.eta is 1: at least 2"},
		{"tuning: {local_epochs: [1, 2], rounds: 2}\nprivacy: {level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 1}",
			"each would spend privacy budget at every site"},
	} {
		if _, err := Parse([]byte(tuneJob + tc.extra + "\n")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.extra, err, tc.want)
		}
	}
	noVal := strings.Replace(tuneJob, "validation_sites: [v]\n", "", 1)
	if _, err := Parse([]byte(noVal + "tuning: {local_epochs: [1, 2], rounds: 2}\n")); err == nil || !strings.Contains(err.Error(), "name validation_sites") {
		t.Errorf("no validation sites: %v", err)
	}
	fedavg := strings.Replace(tuneJob, "{strategy: fedadam, server_lr: 0.01}", "{strategy: fedavg}", 1)
	if _, err := Parse([]byte(fedavg + "tuning: {server_lr: [0.1, 1], rounds: 2}\n")); err == nil || !strings.Contains(err.Error(), `strategy "fedavg" has none`) {
		t.Errorf("server_lr under fedavg: %v", err)
	}
}
