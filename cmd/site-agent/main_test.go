package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/pki"
	siteagent "github.com/concord-fl/concord/site-agent"
)

func TestDispatcher(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{nil, 2, "", "usage: site-agent COMMAND"},
		{[]string{"help"}, 0, "scan", ""},
		{[]string{"--help"}, 0, "commands:", ""},
		{[]string{"help", "scan"}, 0, "usage: site-agent scan DIR", ""},
		{[]string{"scna"}, 2, "", `did you mean "scan"?`},
		{[]string{"dicom", "exprot"}, 2, "", `did you mean "export"?`},
		{[]string{"version"}, 0, "site-agent " + siteagent.Version, ""},
		{[]string{"--version"}, 0, "site-agent " + siteagent.Version, ""},
		{[]string{"scan", "-h"}, 0, "--decode", ""},
		// A flag of another command is refused.
		{[]string{"train", "--npy", "x.npy"}, 2, "", "flag provided but not defined: -npy"},
		{[]string{"scan", ".", "--data", "x.npz"}, 2, "", "flag provided but not defined: -data"},
		{[]string{"dicom", "export", "f.dcm", "--decode"}, 2, "", "flag provided but not defined: -decode"},
		{[]string{"run", "--json"}, 2, "", "flag provided but not defined: -json"},
		{[]string{"deid", "in"}, 2, "", "give IN and OUT"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errs) {
			t.Errorf("%v: exit %d (want %d)\nstdout %q\nstderr %q", tc.args, code, tc.code, out.String(), errb.String())
		}
		if code == 2 && out.Len() > 0 {
			t.Errorf("%v: usage error written to stdout: %q", tc.args, out.String())
		}
		if code == 0 && errb.Len() > 0 {
			t.Errorf("%v: help or version written to stderr: %q", tc.args, errb.String())
		}
	}
}

// siteKit writes a real startup kit for site st-marys and returns its
// agent.yaml path.
func siteKit(t *testing.T) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca")
	if err := pki.InitCA(ca, ""); err != nil {
		t.Fatal(err)
	}
	kit, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ConfigYAML(kit, pki.KitConfig{CoordinatorAddr: "127.0.0.1:7443"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "kit")
	if err := pki.WriteKit(dir, kit, cfg); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, pki.AgentConfigFile)
}

// withConfig rewrites the kit's agent.yaml: the kit's own text with edit applied.
func withConfig(t *testing.T, path string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAgentConfig(t *testing.T) {
	t.Setenv("CONCORD_KEY_PASSPHRASE", "a passphrase long enough for the test")
	for _, tc := range []struct {
		name string
		edit func(string) string
		err  string // "" means load succeeds
	}{
		{"kit as issued", func(s string) string { return s }, ""},
		{"no site line", func(s string) string { return strings.Replace(s, "site: st-marys\n", "", 1) }, ""},
		{"site of another kit", func(s string) string { return strings.Replace(s, "site: st-marys", "site: st-johns", 1) },
			`site: "st-johns", but the certificate`},
		{"unknown key", func(s string) string { return s + "stat_dir: /tmp\n" }, "unknown key stat_dir"},
		{"bad log level", func(s string) string { return s + "log:\n  level: verbose\n" }, "want debug, info, warn or error"},
		{"good log level", func(s string) string { return s + "log:\n  level: debug\n  format: text\n" }, ""},
		{"privacy budget", func(s string) string {
			return s + "privacy:\n  budget: {epsilon: 8, delta: 1e-5}\n  require_dp: true\n"
		}, ""},
		{"privacy budget epsilon", func(s string) string { return s + "privacy:\n  budget: {epsilon: .inf, delta: 1e-5}\n" }, "privacy.budget.epsilon is +Inf"},
		{"privacy budget delta", func(s string) string { return s + "privacy:\n  budget: {epsilon: 8, delta: 0.5}\n" }, "privacy.budget.delta is 0.5"},
		{"privacy budget without delta", func(s string) string { return s + "privacy:\n  budget: {epsilon: 8}\n" }, "privacy.budget.delta is 0"},
		{"site budget delta", func(s string) string { return s + "privacy:\n  site_budget: {epsilon: 8, delta: 0.5}\n" }, "privacy.site_budget.delta is 0.5"},
		{"require_dp without budget", func(s string) string { return s + "privacy:\n  require_dp: true\n" }, "privacy.require_dp is set but privacy.budget is not"},
		{"privacy typo", func(s string) string { return s + "privacy:\n  budjet: {epsilon: 8}\n" }, "unknown key budjet"},
		{"trainer dataset", func(s string) string { return s + "trainer:\n  external: 127.0.0.1:50061\n  dataset: site.npz\n" },
			"trainer.dataset is no longer read: the agent runs the job's pipeline"},
		{"external trainer", func(s string) string { return s + "trainer:\n  external: 127.0.0.1:50061\n" }, ""},
		{"limits", func(s string) string {
			return s + "limits:\n  max_params: 20000000\n  max_training_memory: 16GiB\n  max_gflops_per_example: 10\n"
		}, ""},
		{"limits memory", func(s string) string { return s + "limits:\n  max_training_memory: plenty\n" }, `"plenty" is not a size`},
		{"limits FLOPs", func(s string) string { return s + "limits:\n  max_gflops_per_example: -2\n" }, "limits.max_gflops_per_example -2 is not in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := siteKit(t)
			withConfig(t, path, tc.edit)
			_, _, closeFn, err := load(path)
			closeFn()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("load error %v, want %q", err, tc.err)
			}
		})
	}
}

// TestModelLimitsDefault: unset, the built-in trainer's memory limit is
// three quarters of the machine's; an external trainer's has none; what
// agent.yaml sets is kept.
func TestModelLimitsDefault(t *testing.T) {
	var fc fileConfig
	if l, err := fc.modelLimits(16 << 30); err != nil || l != (learning.Limits{MaxTrainingBytes: 12 << 30}) {
		t.Errorf("built-in trainer: %+v, %v", l, err)
	}
	fc.Trainer.External = "127.0.0.1:50061"
	if l, _ := fc.modelLimits(16 << 30); l != (learning.Limits{}) {
		t.Errorf("external trainer: %+v", l)
	}
	fc.Limits = limitsFile{MaxParams: 5, MaxTrainingMemory: 1 << 30, MaxGFLOPsPerExample: 1.5}
	if l, _ := fc.modelLimits(16 << 30); l != (learning.Limits{MaxParams: 5, MaxTrainingBytes: 1 << 30, MaxFLOPsPerExample: 1.5e9}) {
		t.Errorf("set: %+v", l)
	}
	if m := machineMemory(); runtime.GOOS == "linux" && m < 1<<28 {
		t.Errorf("this machine's memory reads as %d bytes", m)
	}
}
