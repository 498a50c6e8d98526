package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestPrivacyCommand: `site-agent privacy` reads the ledger an agent left
// in its state folder, as text and as JSON, and says when there is none.
func TestPrivacyCommand(t *testing.T) {
	t.Setenv("CONCORD_KEY_PASSPHRASE", "a passphrase long enough for the test")
	path := siteKit(t)
	withConfig(t, path, func(s string) string {
		return s + "privacy:\n  budget: {epsilon: 8, delta: 1e-5}\n  site_budget: {epsilon: 3, delta: 1e-6}\n"
	})
	cfg, _, closeFn, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	a, err := siteagent.New(cfg) // records the ledger with its budget
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if code := run([]string{"privacy", "--config", path}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "record-level privacy budget: epsilon 8 at delta 1e-05") || !strings.Contains(out.String(), "spent: epsilon 0 (0.0% of the budget) over 0 releases") ||
		!strings.Contains(out.String(), "site-level privacy budget: epsilon 3 at delta 1e-06") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"privacy", "--state", cfg.StateDir, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errb.String())
	}
	var rep PrivacyReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Budget == nil || rep.Budget.Epsilon != 8 || rep.Spent != 0 || rep.Entries == nil ||
		rep.Site == nil || rep.Site.Budget.Level != "site" || rep.Site.Budget.Epsilon != 3 || rep.WitnessAlarms == nil {
		t.Fatalf("--json: %+v, %v (%s)", rep, err, out.String())
	}
	errb.Reset()
	if code := run([]string{"privacy", "--state", filepath.Join(t.TempDir(), "none")}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no agent state in") {
		t.Fatalf("no state: exit %d, %s", code, errb.String())
	}
}
