package registry

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/evaluation"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; review and rerun with -update:\n%s", name, got)
	}
}

func TestCardGolden(t *testing.T) {
	_, js, err := Card(testManifest("v1", []float32{1, 2, 3, 4, 5, 6, 7, 8}))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "card.json.golden", js)

	a, b := testManifest("v1", []float32{1, 0, 0, 0, 0, 0, 0, 0}), testManifest("v2", []float32{1, 3, 4, 0, 0, 0, 0, 2})
	b.Parent, b.Privacy = "v1", nil
	r, err := Diff(a, b, []float32{1, 0, 0, 0, 0, 0, 0, 0}, []float32{1, 3, 4, 0, 0, 0, 0, 2}, testLayout().JSON())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	golden(t, "diff.txt.golden", buf.Bytes())
}

func TestCardLimitations(t *testing.T) {
	for _, tc := range []struct {
		name      string
		edit      func(m *Manifest)
		want, not []string
	}{
		{"as built", func(*Manifest) {}, []string{"Validated at one site only (north)", "subgroups age=90+", "Trained with differential privacy, level standard"},
			[]string{"promotion gates", "No site validated", "interval of auc is wide"}},
		{"no validation", func(m *Manifest) { m.Validation, m.ValidationSites = nil, nil }, []string{"No site validated this version"}, []string{"Validated at"}},
		{"no DP", func(m *Manifest) { m.Privacy = &Privacy{Level: "none"} }, []string{"Trained without differential privacy"}, nil},
		{"rejected", func(m *Manifest) {
			m.Gate = Gate{State: GateRejected, Reasons: []string{"site north: auc 0.812 < min_auc 0.85"}}
		}, []string{"did not pass its promotion gates (site north: auc 0.812 < min_auc 0.85)"}, nil},
		{"wide interval", func(m *Manifest) {
			m.Validation[0].Assessment.Metrics["auc"] = evaluation.Estimate{Value: 0.8, Lower: 0.6, Upper: 0.95}
		}, []string{"Site north: the 95% interval of auc is wide (0.600 to 0.950), from 200 examples"}, nil},
		{"no purpose", func(m *Manifest) { m.Purpose = "" }, []string{"stated no intended use"}, nil},
		{"three sites", func(m *Manifest) {
			for _, s := range []string{"south", "east"} {
				m.ValidationSites = append(m.ValidationSites, s)
				m.Validation = append(m.Validation, Validation{Site: s, ModelRole: RoleGlobal, Receipt: []byte("r"), Assessment: assessment(0.8)})
			}
		}, nil, []string{"Validated at"}},
	} {
		m := testManifest("v1", []float32{1})
		tc.edit(&m)
		text := strings.Join(cardDoc(m).Limitations, "\n")
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: limitations lack %q:\n%s", tc.name, w, text)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(text, n) {
				t.Errorf("%s: limitations say %q:\n%s", tc.name, n, text)
			}
		}
	}
}
