package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/learning"
)

const customNet = "import torch.nn as nn\n\ndef build(channels, height, width, classes):\n    return nn.Linear(channels * height * width, classes)\n"

// writeCustomJob writes a job file pinning pin and net.py holding code
// next to it, and returns the job file's path.
func writeCustomJob(t *testing.T, code, pin string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "net.py"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	job := "name: custom\nmodel: {arch: custom, code: {file: net.py, sha256: " + pin + "}, channels: 1, height: 28, width: 28, classes: 2,\n" +
		"  layout: [{name: weight, shape: [2, 784]}, {name: bias, shape: [2]}]}\nprivacy: {secure_aggregation: none}\n"
	p := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(p, []byte(job), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseFileReadsCode(t *testing.T) {
	s, err := ParseFile(writeCustomJob(t, customNet, CodeSHA256([]byte(customNet))))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Model.Code) != customNet || s.Model.CodeFile != "net.py" || s.Model.BaseWidth != 0 {
		t.Fatalf("model: code %q file %q base width %d", s.Model.Code, s.Model.CodeFile, s.Model.BaseWidth)
	}
	m, err := learning.New(ModelSpec(s), s.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if l := m.Layout(); l.Version != learning.CustomVersion || l.Total != 2*784+2 || l.Code != s.Model.CodeSha256 {
		t.Fatalf("layout %s total %d code %s", l.Version, l.Total, l.Code)
	}
	// The spec as the coordinator receives it validates again.
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
}

// TestCustomChangedFileRefused: a module edited after its hash was pinned
// is refused at submission, and so is a spec whose bytes were swapped on
// the way.
func TestCustomChangedFileRefused(t *testing.T) {
	pin := CodeSHA256([]byte(customNet))
	_, err := ParseFile(writeCustomJob(t, customNet+"# edited\n", pin))
	if !errors.Is(err, ErrCodeChanged) || !strings.Contains(err.Error(), "the file changed since it was pinned") {
		t.Fatalf("changed file: %v", err)
	}
	s, err := ParseFile(writeCustomJob(t, customNet, pin))
	if err != nil {
		t.Fatal(err)
	}
	s.Model.Code = append(s.Model.Code, '\n')
	if err := Validate(s); !errors.Is(err, ErrCodeChanged) {
		t.Fatalf("swapped bytes: %v", err)
	}
}

func TestCustomFieldsValidated(t *testing.T) {
	pin := CodeSHA256([]byte(customNet))
	for _, tc := range []struct {
		name string
		job  string
		want string
	}{
		{"no code read", "model: {arch: custom, code: {file: net.py, sha256: " + pin + "}, layout: [{name: w, shape: [2]}]}",
			"the job carries no module"},
		{"no layout", "model: {arch: custom, code: {file: net.py, sha256: " + pin + "}}", "model.layout has 0 entries"},
		{"code on cnn", "model: {arch: cnn, code: {file: net.py, sha256: " + pin + "}}", "they belong to arch custom"},
		{"layout on cnn", "model: {arch: cnn, layout: [{name: w, shape: [2]}]}", "they belong to arch custom"},
		{"base width", "model: {arch: custom, base_width: 8, code: {file: net.py, sha256: " + pin + "}, layout: [{name: w, shape: [2]}]}",
			"a custom module defines its own network"},
	} {
		_, err := Parse([]byte(tc.job))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	s, err := ParseFile(writeCustomJob(t, customNet, pin))
	if err != nil {
		t.Fatal(err)
	}
	s.ValidationSites = []string{"st-marys"}
	if err := Validate(s); err == nil || !strings.Contains(err.Error(), "they do not run custom models") {
		t.Errorf("custom model with validation sites: %v", err)
	}
	// The layout is checked by package learning, and the size against the
	// limits, once the module is present.
	p := writeCustomJob(t, customNet, pin)
	raw, _ := os.ReadFile(p)
	dup := strings.Replace(string(raw), "name: bias", "name: weight", 1)
	if err := os.WriteFile(p, []byte(dup), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(p); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Errorf("duplicate parameter name: %v", err)
	}
	huge := strings.Replace(string(raw), "shape: [2, 784]", "shape: [100000, 1000]", 1)
	if err := os.WriteFile(p, []byte(huge), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(p); err == nil || !strings.Contains(err.Error(), "limits.max_model_params") {
		t.Errorf("oversized custom model: %v", err)
	}
}

// TestCustomExampleJob: the README's example job parses with its module,
// so its pinned hash and layout stay in step with net.py.
func TestCustomExampleJob(t *testing.T) {
	s, err := ParseFile(filepath.Join("..", "deploy", "examples", "custom", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Model.Arch != ArchCustom || len(s.Model.CustomLayout) != 6 {
		t.Fatalf("model %s with %d tensors", s.Model.Arch, len(s.Model.CustomLayout))
	}
}
