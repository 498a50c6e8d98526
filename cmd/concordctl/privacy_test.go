package main

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/concord-fl/concord/privacy/dp"
)

func TestPrivacyCommands(t *testing.T) {
	opacus := []string{"--noise-multiplier", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--delta", "1e-5"}
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"group help", []string{"privacy", "-h"}, 0, "usage: concordctl privacy COMMAND", ""},
		{"listed", []string{"help"}, 0, "privacy", ""},
		{"spent help", []string{"privacy", "spent", "-h"}, 0, "--noise-multiplier", ""},
		{"plan help", []string{"help", "privacy", "plan"}, 0, "--epsilon", ""},
		{"typo", []string{"privacy", "spnet"}, 2, "", `did you mean "spent"?`},
		{"unknown flag", []string{"privacy", "spent", "--noise", "1"}, 2, "", "flag provided but not defined: -noise"},
		{"not a number", []string{"privacy", "spent", "--noise-multiplier", "x", "--sample-rate", "0.1", "--steps", "1", "--delta", "1e-5"}, 2, "", "invalid value"},
		{"missing delta", []string{"privacy", "spent", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "1"}, 2, "", "--delta is required"},
		{"rate above 1", []string{"privacy", "spent", "--noise-multiplier", "1", "--sample-rate", "2", "--steps", "1", "--delta", "1e-5"}, 2, "", "sample rate 2"},
		{"delta 1", []string{"privacy", "plan", "--epsilon", "1", "--sample-rate", "0.1", "--steps", "1", "--delta", "1"}, 2, "", "delta 1"},
		{"extra argument", append([]string{"privacy", "spent", "now"}, opacus...), 2, "", `unexpected argument "now"`},
		{"Opacus reference", append([]string{"privacy", "spent"}, opacus...), 0, "epsilon: 7.329", ""},
		{"no noise", []string{"privacy", "spent", "--noise-multiplier", "0", "--sample-rate", "0.1", "--steps", "1", "--delta", "1e-5"}, 0, "epsilon: infinite", ""},
		{"plan", []string{"privacy", "plan", "--epsilon", "8", "--delta", "1e-5", "--sample-rate", "0.04", "--steps", "2250"}, 0, "noise multiplier: 1.41", ""},
		{"unreachable plan", []string{"privacy", "plan", "--epsilon", "1e-9", "--delta", "1e-12", "--sample-rate", "1", "--steps", "1000000"}, 2, "", "raise the budget"},
	} {
		code, out, errs := runCtl(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.errs) {
			t.Errorf("%s: concordctl %s\nexit %d, want %d\nstdout: %q (want %q)\nstderr: %q (want %q)",
				tc.name, strings.Join(tc.args, " "), code, tc.code, out, tc.out, errs, tc.errs)
		}
	}
}

func TestPrivacySpentValue(t *testing.T) {
	code, out, errs := runCtl("privacy", "spent", "--noise-multiplier", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--delta", "1e-5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("output %q", out)
	}
	eps, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		t.Fatalf("epsilon %q: %v", f[1], err)
	}
	// Opacus' test value, which Concord's conservative fractional series
	// meets from above within 1e-4.
	if want := 7.32911117143; eps < want*(1-1e-6) || math.Abs(eps-want)/want > 1e-4 {
		t.Errorf("printed epsilon %v, want %v within 1e-4 (not below)", eps, want)
	}
}

func TestPrivacyJSON(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		numbers []string
		key     string
	}{
		{[]string{"privacy", "spent", "--json", "--noise-multiplier", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--delta", "1e-5"},
			[]string{"epsilon", "delta", "noise_multiplier", "sample_rate", "steps", "order"}, "epsilon"},
		// The global --json works too.
		{[]string{"--json", "privacy", "plan", "--epsilon", "8", "--delta", "1e-5", "--sample-rate", "0.04", "--steps", "2250"},
			[]string{"noise_multiplier", "epsilon", "delta", "sample_rate", "steps", "achieved_epsilon"}, "noise_multiplier"},
	} {
		code, out, errs := runCtl(tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(out), &obj); err != nil {
			t.Fatalf("%v: %v in %q", tc.args, err, out)
		}
		for _, k := range tc.numbers {
			if _, ok := obj[k].(float64); !ok {
				t.Errorf("%v: %q is %T (%v), want a JSON number", tc.args, k, obj[k], obj[k])
			}
		}
		if obj["accountant"] != dp.AccountantVersion {
			t.Errorf("%v: accountant %v", tc.args, obj["accountant"])
		}
	}
	// The planned noise reproduces through spent.
	_, out, _ := runCtl("privacy", "plan", "--json", "--epsilon", "3", "--delta", "1e-5", "--sample-rate", "0.01", "--steps", "5000")
	var plan struct {
		NoiseMultiplier float64 `json:"noise_multiplier"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatal(err)
	}
	_, out, _ = runCtl("privacy", "spent", "--json", "--noise-multiplier", strconv.FormatFloat(plan.NoiseMultiplier, 'g', -1, 64),
		"--sample-rate", "0.01", "--steps", "5000", "--delta", "1e-5")
	var spent struct {
		Epsilon float64 `json:"epsilon"`
	}
	if err := json.Unmarshal([]byte(out), &spent); err != nil {
		t.Fatal(err)
	}
	if spent.Epsilon > 3 || spent.Epsilon < 3*(1-1e-3) {
		t.Errorf("plan gave σ=%v, spent says ε=%v; want just under 3", plan.NoiseMultiplier, spent.Epsilon)
	}
}
