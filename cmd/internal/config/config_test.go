package config

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type file struct {
		Listen string `yaml:"listen"`
		Log    struct {
			Level string `yaml:"level"`
		} `yaml:"log"`
		Limits struct {
			MaxModelParams uint64 `yaml:"max_model_params"`
		} `yaml:"limits"`
	}
	for _, tc := range []struct{ yaml, err string }{
		{"listen: :7443\nlog:\n  level: info\n", ""},
		{"", ""},
		{"listen: :7443\nlsiten: :8443\n", "line 2: unknown key lsiten"},
		{"log:\n  levle: debug\n", "line 2: unknown key levle"},
		{"limits:\n  max_model_params: -1\n", "line 2: cannot unmarshal !!int `-1`"},
		{"listen: [\n", "yaml:"},
	} {
		var f file
		err := Decode([]byte(tc.yaml), &f)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "config.file") {
			t.Errorf("%q: error %v, want %q and no Go type name", tc.yaml, err, tc.err)
		}
	}
}
