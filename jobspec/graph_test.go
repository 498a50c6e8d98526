package jobspec

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/learning"
)

const graphJob = `name: declared
model:
  arch: graph
  channels: 1
  height: 64
  width: 64
  classes: 2
  layers:
    - {name: stem, op: conv, out: 16, kernel: 3, stride: 2, padding: 1}
    - {name: stem_gn, op: groupnorm, groups: 4}
    - {name: stem_act, op: relu}
    - {name: b1_c1, op: conv, out: 16, kernel: 3, padding: 1, bias: false}
    - {name: b1_add, op: add, inputs: [b1_c1, stem_act]}
    - {name: pool, op: globalavgpool}
    - {name: drop, op: dropout, p: 0.2}
    - {name: fc, op: dense, out: 2}
sites: [st-marys, city-general]
validation_sites: [north]
`

const resnetJob = `name: chest
model: {arch: resnet18, channels: 1, height: 224, width: 224, classes: 2}
sites: [st-marys, city-general]
validation_sites: [north]
`

// TestGraphJobs parses a declared graph and a resnet18 job and builds the
// models package learning trains, with the declaration carried over.
func TestGraphJobs(t *testing.T) {
	s, err := Parse([]byte(graphJob))
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Model; m.BaseWidth != 0 || len(m.Layers) != 8 || m.Layers[3].GetBias() || m.Layers[4].Inputs[1] != "stem_act" {
		t.Fatalf("graph model %v", m)
	}
	mod, err := learning.New(ModelSpec(s), s.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if l := mod.Layout(); l.Version != learning.GraphVersion || len(l.Layers) != 8 || l.Total != 16*9+16+16+16+16*16*9+16*2+2 {
		t.Fatalf("graph layout %s, %d layers, %d parameters", l.Version, len(l.Layers), l.Total)
	}

	s, err = Parse([]byte(resnetJob))
	if err != nil {
		t.Fatal(err)
	}
	if s.Model.BaseWidth != 64 {
		t.Fatalf("resnet18 base width %d, want the default 64", s.Model.BaseWidth)
	}
	n, err := learning.ParamCount(ModelSpec(s))
	// torchvision resnet18 (11,689,512) less 2 of 3 input channels at the stem and 998 of 1000 classes
	if err != nil || n != 11_171_266 {
		t.Fatalf("resnet18 (grey, 2 classes): %d parameters (%v)", n, err)
	}
}

func TestGraphJobErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"layers on cnn", `model: {arch: cnn, layers: [{name: a, op: relu}]}`, `model.layers is set for arch "cnn"`},
		{"no layers", `model: {arch: graph}`, "model.layers is empty"},
		{"base width on graph", `model: {arch: graph, base_width: 8, layers: [{name: fc, op: dense, out: 2}]}`, "a graph declares its widths"},
		{"unknown op", `model: {arch: graph, layers: [{name: a, op: swish}, {name: fc, op: dense, out: 2}]}`, `layer 1 ("a"): op "swish"`},
		{"foreign field", `model: {arch: graph, layers: [{name: a, op: relu, kernel: 3}, {name: fc, op: dense, out: 2}]}`, "field kernel does not apply to op relu"},
		{"bad join", `model: {arch: graph, layers: [{name: a, op: conv, out: 3, kernel: 3}, {name: s, op: add, inputs: [a, input]}, {name: fc, op: dense, out: 2}]}`,
			`layer 2 ("s", add): inputs have shapes`},
		{"unknown key", `model: {arch: graph, layers: [{name: a, op: relu, colour: red}]}`, "colour"},
		{"resnet side", `model: {arch: resnet18, height: 200, width: 224}`, "multiples of 32"},
		{"resnet norm", `model: {arch: resnet34, height: 64, width: 64, norm: group}`, "model.norm"},
		{"resnet too big", `model: {arch: resnet34, height: 64, width: 64, base_width: 256}`, "parameters"},
		{"two masks", `model: {arch: graph, classes: 2, layers: [{name: m, op: conv, out: 2, kernel: 1}]}` + "\npipeline: {normalise: \"ct-window:40:400\"}",
			"the last layer outputs 2 masks per image; a federated segmentation job trains one foreground"},
		{"dice gate on a declared classifier", `model: {arch: graph, layers: [{name: p, op: globalavgpool}, {name: fc, op: dense, out: 2}]}` +
			"\nvalidation_sites: [c]\nvalidation: {min_dice: 0.5}", `validation.min_dice is a segmentation gate: model "graph" classifies`},
	} {
		_, err := Parse([]byte("name: x\nsites: [a, b]\n" + tc.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestGraphSegmenterJob: a declared graph whose output is one mask at the
// input size is a segmentation job, with the segmentation gate and
// without class weights, like the unet.
func TestGraphSegmenterJob(t *testing.T) {
	const job = "name: seg\nsites: [a, b]\nvalidation_sites: [c]\nvalidation: {min_dice: 0.5}\n" +
		"model: {arch: graph, layers: [{name: c, op: conv, out: 4, kernel: 3, padding: 1}, {name: m, op: conv, out: 1, kernel: 1}]}\n"
	s, err := Parse([]byte(job))
	if err != nil || !Segments(s) {
		t.Fatalf("segments %v: %v", Segments(s), err)
	}
	if _, err := Parse([]byte(job + "training: {class_weighting: balanced}\n")); err == nil || !strings.Contains(err.Error(), "a segmentation model's Dice") {
		t.Errorf("class weights on a declared segmenter: %v", err)
	}
}
