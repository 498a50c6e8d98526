package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/concord-fl/concord/privacy/he/party"
)

var cliArgs = flag.String("he.args", "", "run concord-bench he with these arguments: go test ./cmd/concord-bench -run CommandLine -he.args='--params 1M --sites 10 --json' -timeout 0 -v")

func TestCommandLine(t *testing.T) {
	if *cliArgs == "" {
		t.Skip("set -he.args to run the benchmark command")
	}
	if code := run(append([]string{"he"}, strings.Fields(*cliArgs)...), os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestRunOneConfigurationJSON(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"he", "--params", "20k", "--sites", "4", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var r party.RoundReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out.String())
	}
	if r.Params != 20_000 || r.Sites != 4 || r.Threshold != 3 {
		t.Fatalf("configuration %+v", r)
	}
	if r.BytesPerParam > 8 || r.BytesPerParam < 7 {
		t.Errorf("bytes_per_param %.3f, want 7..8", r.BytesPerParam)
	}
	if r.MaxAbsError <= 0 || r.MaxAbsError > r.ErrorBound {
		t.Errorf("max_abs_error %g, bound %g", r.MaxAbsError, r.ErrorBound)
	}
	if r.EncryptSecondsPerSite <= 0 || r.DecryptSeconds <= 0 || r.HERoundSeconds <= r.EncryptSecondsMax {
		t.Errorf("timings not measured: %+v", r)
	}
	for _, k := range []string{"bytes_per_param", "max_abs_error", "encrypt_seconds_per_site", "aggregate_seconds", "decrypt_seconds", "coordinator_peak_bytes", "plaintext_round_seconds", "he_round_seconds"} {
		if !strings.Contains(lines[len(lines)-1], `"`+k+`"`) {
			t.Errorf("JSON lacks %s", k)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--params", "x"}, {"--sites", "0", "--params", "1k"}, {"--set", "nope"}, {"extra"}, {"--params", "1k", "--sites", "3", "--threshold", "4"}} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"he"}, args...), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
