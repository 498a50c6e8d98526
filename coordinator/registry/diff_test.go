package registry

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	wa := []float32{1, 0, 0, 0, 0, 0, 0, 0}
	wb := []float32{1, 3, 4, 0, 0, 0, 0, 2}
	a := testManifest("v1", wa)
	b := testManifest("v2", wb)
	b.JobID, b.Parent, b.Rounds = "8", "v1", append(b.Rounds, Round{Round: 3})
	b.Privacy = nil
	b.Validation[0].Assessment.Metrics["auc"] = est(0.9)
	b.Validation = append(b.Validation, Validation{Site: "south", ModelRole: RoleGlobal, Receipt: []byte("r"), Assessment: assessment(0.8)})
	r, err := Diff(a, b, wa, wb, testLayout().JSON())
	if err != nil {
		t.Fatal(err)
	}
	// conv.weight moved by (0,3,4,0,0,0) from (1,0,0,0,0,0): L2 5, relative 5;
	// fc.bias by (0,2) from zero: L2 2, no relative change.
	if len(r.Layers) != 2 || r.Layers[0].Name != "conv.weight" || r.Layers[0].L2 != 5 || *r.Layers[0].Relative != 5 {
		t.Errorf("conv.weight: %+v", r.Layers[0])
	}
	if r.Layers[1].L2 != 2 || r.Layers[1].Relative != nil || r.Layers[1].Params != 2 {
		t.Errorf("fc.bias: %+v", r.Layers[1])
	}
	if math.Abs(r.Total.L2-math.Sqrt(29)) > 1e-12 {
		t.Errorf("total L2 %v, want sqrt(29)", r.Total.L2)
	}
	var fields []string
	for _, f := range r.Lineage {
		fields = append(fields, f.Field)
	}
	if want := []string{"job", "rounds", "privacy", "parent", "weights sha256"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("lineage differences %v, want %v", fields, want)
	}
	if r.Metrics[0].Site != "north" || r.Metrics[0].Metric != "auc" || r.Metrics[0].A.Value != 0.86 || r.Metrics[0].B.Value != 0.9 {
		t.Errorf("first metric row %+v", r.Metrics[0])
	}
	last := r.Metrics[len(r.Metrics)-1]
	if last.Site != "south" || last.A != nil || last.B == nil {
		t.Errorf("a site only B was validated at: %+v", last)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"north", "0.860 [0.810, 0.910]", "+0.040", "conv.weight", "2x3", "500.00%", "n/a (A is zero)", "parent", "(none)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, buf.String())
		}
	}

	other := b
	other.LayoutHash = "ff00ff00ff00ff00ff"
	if _, err := Diff(a, other, wa, wb, testLayout().JSON()); err == nil || !strings.Contains(err.Error(), "layouts differ") {
		t.Errorf("different layouts: %v", err)
	}
	if _, err := Diff(a, b, wa, wb[:4], testLayout().JSON()); err == nil {
		t.Error("short weights accepted")
	}
	if _, err := Diff(a, b, wa, wb, append(testLayout().JSON(), ' ')); err == nil {
		t.Error("a layout that is not the versions' accepted")
	}
}

func TestDecodeWeights(t *testing.T) {
	w := []float32{1.5, -2, float32(math.Inf(1))}
	got, err := DecodeWeights(f32bytes(w))
	if err != nil || !reflect.DeepEqual(got, w) {
		t.Errorf("DecodeWeights = %v, %v", got, err)
	}
	if _, err := DecodeWeights([]byte{1, 2, 3}); err == nil {
		t.Error("3 bytes accepted")
	}
}
