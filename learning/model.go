package learning

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// ErrWeights is returned (wrapped) when a weight vector does not fit a model.
var ErrWeights = errors.New("weight vector does not match the model layout")

// initStream is the PCG stream of the initialiser, fixed by the contract
// with the PyTorch reference trainer.
const initStream = 0x5eed

// Model is a network and its current weights. It is not safe for concurrent
// use: Train mutates the weights; Predict may run concurrently with other
// Predict calls only.
type Model struct {
	spec   Spec
	layout Layout
	net    *cnnNet   // set for "cnn"
	graph  *graphNet // set for "graph"
	impl   network
	w      []float32
}

// New builds a model whose weights are drawn deterministically from seed:
// He-normal (fan-in) weights, zero biases, unit normalisation scales, drawn in layout order from
// PCG(seed, 0x5eed).
func New(spec Spec, seed int64) (*Model, error) {
	s, err := spec.normalised()
	if err != nil {
		return nil, err
	}
	var m *Model
	switch s.Arch {
	case ArchCustom:
		return newCustom(s, seed), nil // weights only: Train and Predict refuse it
	case "graph":
		pl, err := compileGraph(s)
		if err != nil {
			return nil, err
		}
		l := graphLayout(s, pl)
		g := newGraphNet(s, pl)
		m = &Model{spec: s, layout: l, graph: g, impl: g, w: make([]float32, l.Total)}
		g.init(m.w, rand.New(rand.NewPCG(uint64(seed), initStream)))
		return m, nil
	case "unet":
		l := unetLayout(s)
		m = &Model{spec: s, layout: l, impl: newUNet(s, l), w: make([]float32, l.Total)}
	default:
		l := cnnLayout(s)
		n := newCNNNet(s, l)
		m = &Model{spec: s, layout: l, net: n, impl: n, w: make([]float32, l.Total)}
	}
	l := m.layout
	rng := rand.New(rand.NewPCG(uint64(seed), initStream))
	for _, e := range l.Params {
		if len(e.Shape) == 1 {
			if strings.Contains(e.Name, ".norm") && strings.HasSuffix(e.Name, ".weight") {
				for i := range e.Size {
					m.w[e.Offset+i] = 1 // normalisation scales start at one
				}
			}
			continue // biases and normalisation shifts start at zero
		}
		fanIn := 1
		for _, d := range e.Shape[1:] {
			fanIn *= d
		}
		std := math.Sqrt(2 / float64(fanIn))
		dst := m.w[e.Offset : e.Offset+e.Size]
		for i := range dst {
			dst[i] = float32(rng.NormFloat64() * std)
		}
	}
	return m, nil
}

// segmentation reports whether the model outputs masks, and its output
// channels (masks) or classes.
func (m *Model) segmentation() (seg bool, k int) {
	switch {
	case m.spec.Arch == "unet":
		return true, 1
	case m.graph != nil:
		return m.graph.pl.seg, m.graph.pl.k
	}
	return false, m.spec.Classes
}

// Segments reports whether the model segments (outputs a mask per image)
// rather than classifies.
func (m *Model) Segments() bool {
	seg, _ := m.segmentation()
	return seg
}

// Spec returns the model's spec with defaults filled in.
func (m *Model) Spec() Spec { return m.spec }

// Layout returns the manifest of the flat weight vector.
func (m *Model) Layout() Layout {
	l := m.layout
	l.Input = append([]int(nil), l.Input...)
	l.Params = append([]LayoutEntry(nil), l.Params...)
	return l
}

// Weights returns a copy of the flat weight vector.
func (m *Model) Weights() []float32 { return append([]float32(nil), m.w...) }

// SetWeights replaces the weights with a copy of w, which must have the
// layout's length and hold only finite values.
func (m *Model) SetWeights(w []float32) error {
	if len(w) != len(m.w) {
		return fmt.Errorf("%w: got %d values, layout %s needs %d", ErrWeights, len(w), m.layout.Version, len(m.w))
	}
	for i, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: value %d is not finite", ErrWeights, i)
		}
	}
	copy(m.w, w)
	return nil
}

// Segments reports, from the spec alone, whether a model built from it
// segments (outputs k masks per image) and k, or classifies (k is then the
// number of classes).
func (s Spec) Segments() (seg bool, k int, err error) {
	n, err := s.normalised()
	switch {
	case err != nil:
		return false, 0, err
	case n.Arch == "unet":
		return true, 1, nil
	case n.Arch == "graph":
		pl, err := compileGraph(n)
		if err != nil {
			return false, 0, err
		}
		return pl.seg, pl.k, nil
	}
	return false, n.Classes, nil
}
