package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/coordinator"
)

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"--version"}, 0, "coordinator " + coordinator.Version, ""},
		{[]string{"-h"}, 0, "usage: coordinator", ""},
		{[]string{"--help"}, 0, "--config", ""},
		{[]string{"verison"}, 2, "", "did you mean --version?"},
		{[]string{"--reason", "x"}, 2, "", "flag provided but not defined"},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, 1, "", "read config"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errs) {
			t.Errorf("%v: exit %d (want %d)\nstdout %q\nstderr %q", tc.args, code, tc.code, out.String(), errb.String())
		}
		if tc.code == 0 && errb.Len() > 0 {
			t.Errorf("%v: stderr %q on success", tc.args, errb.String())
		}
	}
}

func TestConfigRefusesUnknownKeysAndLevels(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"listen: \":7443\"\nstate_dir: s\nstate_dri: x\n", "line 3: unknown key state_dri"},
		{"log:\n  level: verbose\nstate_dir: s\n", "want debug, info, warn or error"},
		{"log:\n  format: xml\nstate_dir: s\n", "want json or text"},
		{"limits:\n  max_model_parms: 5\n", "line 2: unknown key max_model_parms"},
		{"limits:\n  max_model_params: -5\n", "line 2: cannot unmarshal"},
		{"limits:\n  max_training_memory: lots\n", `line 2: "lots" is not a size`},
		{"state_dir: s\nlimits:\n  max_gflops_per_example: -1\n", "limits.max_gflops_per_example -1 is not in (0, 1000000]"},
	} {
		p := filepath.Join(dir, "coordinator.yaml")
		if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := load(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	p := filepath.Join(dir, "limits.yaml")
	if err := os.WriteFile(p, []byte("limits:\n  max_model_params: 20000000\n  max_training_memory: 8GiB\n  max_gflops_per_example: 2.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := readConfig(p)
	if err != nil || fc.Limits.MaxModelParams != 20_000_000 || fc.Limits.MaxTrainingMemory != 8<<30 || fc.Limits.MaxGFLOPsPerExample != 2.5 {
		t.Errorf("limits: %+v, %v", fc.Limits, err)
	}
}
