package extrainer

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// TestGraphPython runs deploy/trainer/graph_test.py: graph.py against a
// hand-written ResNet-18 with GroupNorm, every op against
// torch.nn.functional, and the graph_parity.py CLI. About 5 s on one core.
func TestGraphPython(t *testing.T) {
	runTrainerScript(t, "graph_test.py")
}

// graphManifest is a concord.graph/1 manifest of a small declared graph
// (conv, GroupNorm, ReLU, max pool, global average pool, dense), written
// by hand from the shared contract, with normal(0, 0.3) initial weights.
func graphManifest(c, classes int) ([]byte, []float32) {
	layers := []map[string]any{
		{"name": "c1", "op": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1, "dilation": 1, "groups": 1, "bias": true, "inputs": []string{"input"}},
		{"name": "g1", "op": "groupnorm", "groups": 2, "eps": 1e-5, "inputs": []string{"c1"}},
		{"name": "a1", "op": "relu", "inputs": []string{"g1"}},
		{"name": "p1", "op": "maxpool", "kernel": 2, "stride": 2, "padding": 0, "inputs": []string{"a1"}},
		{"name": "gap", "op": "globalavgpool", "inputs": []string{"p1"}},
		{"name": "fc", "op": "dense", "out": classes, "bias": true, "inputs": []string{"gap"}},
	}
	type param struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"`
		Offset int    `json:"offset"`
		Size   int    `json:"size"`
	}
	shapes := []param{
		{Name: "c1.weight", Shape: []int{4, c, 3, 3}}, {Name: "c1.bias", Shape: []int{4}},
		{Name: "g1.weight", Shape: []int{4}}, {Name: "g1.bias", Shape: []int{4}},
		{Name: "fc.weight", Shape: []int{classes, 4}}, {Name: "fc.bias", Shape: []int{classes}},
	}
	total := 0
	for i := range shapes {
		shapes[i].Size = 1
		for _, d := range shapes[i].Shape {
			shapes[i].Size *= d
		}
		shapes[i].Offset = total
		total += shapes[i].Size
	}
	rng := rand.New(rand.NewPCG(5, 0x5eed))
	w := make([]float32, total)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.3)
	}
	m, err := json.Marshal(map[string]any{
		"version": "concord.graph/1", "arch": "graph", "input": []int{c, 16, 16}, "classes": classes,
		"params": shapes, "total": total, "layers": layers,
	})
	if err != nil {
		panic(err)
	}
	return m, w
}

// TestGraphTrainRound trains a declared graph for one round through the
// real trainer's gRPC Train path.
func TestGraphTrainRound(t *testing.T) {
	data := writeData(t, "graph-blobs.npz", 64, 16, 16, 3)
	c := dial(t, trainer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Supports("concord.graph/1", "graph") {
		t.Fatalf("info = %+v; want concord.graph/1 graph", info)
	}
	manifest, global := graphManifest(1, 2)
	settings := Settings{Epochs: 1, BatchSize: 16, Optimizer: "sgd", LR: 0.1, Seed: 3, Dataset: data}
	res, err := c.Train(ctx, "job-g", 1, manifest, global, settings, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTrained(t, res.Weights, global)
	if res.Samples != 64 {
		t.Errorf("samples = %d, want 64", res.Samples)
	}
}
