package learning

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
)

// Custom models (arch "custom") are a consortium's PyTorch module, run only
// by external trainers (deploy/trainer/custom.py) at sites whose hospital
// approved the module's hash. This package never runs them: it knows the
// module only by its pinned SHA-256 and the parameter list the job declares
// (Spec.Custom, the module's named_parameters() in order), which is all the
// coordinator needs to build the layout manifest, count the parameters and
// draw the initial weights, so that every site starts from the same vector
// without anyone running Python outside a site.
//
// The manifest's order is the declared order (the module's own, which the
// trainer checks name by name and shape by shape), and it carries the code
// hash, so two modules with the same parameter shapes never share a layout
// hash and their vectors are never averaged together. Initial weights follow
// New's rule read on PyTorch names: tensors of two or more dimensions are
// He-normal with fan-in the product of all but the first dimension; among
// one-dimensional tensors, those named "….weight" (normalisation scales in
// PyTorch's layers) start at one and the others (biases, shifts) at zero.

// ArchCustom is the architecture name of a custom model.
const ArchCustom = "custom"

// CustomVersion is the layout version of a custom model.
const CustomVersion = "concord.custom/1"

// Bounds on a custom model's declaration.
const (
	MaxCustomParams  = 1000 // named tensors
	maxCustomDims    = 8
	maxCustomNameLen = 128
	maxCustomSide    = 1024
	maxCustomChans   = 64
)

// ErrCustomCode is returned (wrapped) by Train and Predict on a custom
// model: only an external PyTorch trainer runs consortium code.
var ErrCustomCode = errors.New("custom models run on external PyTorch trainers only")

// CustomParam is one named parameter tensor of a custom model.
type CustomParam struct {
	Name  string
	Shape []int
}

// customName is what PyTorch's named_parameters() produces: dotted module
// paths of Python identifiers and list indices.
var customName = regexp.MustCompile(`^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$`)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s Spec) customNormalised() (Spec, error) {
	bad := func(format string, a ...any) (Spec, error) {
		return s, fmt.Errorf("%w: custom model: %s", ErrBadSpec, fmt.Sprintf(format, a...))
	}
	switch {
	case len(s.Layers) != 0 || s.Family != "" || s.BaseWidth != 0 || s.Norm != "":
		return bad("layers, base width and norm belong to the built-in architectures; the module defines its own")
	case !sha256Hex.MatchString(s.CodeSHA256):
		return bad("code sha256 %q is not 64 lowercase hex digits", bounded(s.CodeSHA256))
	case s.Channels < 1 || s.Channels > maxCustomChans:
		return bad("channels %d, want 1..%d", s.Channels, maxCustomChans)
	case s.Height < 1 || s.Height > maxCustomSide || s.Width < 1 || s.Width > maxCustomSide:
		return bad("input %dx%d, want 1..%d on each side", s.Height, s.Width, maxCustomSide)
	case s.Classes < 2:
		return bad("classes %d, want at least 2 (binary uses 2)", s.Classes)
	case len(s.Custom) == 0 || len(s.Custom) > MaxCustomParams:
		return bad("%d parameter tensors declared, want 1..%d", len(s.Custom), MaxCustomParams)
	}
	seen := make(map[string]bool, len(s.Custom))
	total := 0
	for i, p := range s.Custom {
		switch {
		case len(p.Name) > maxCustomNameLen || !customName.MatchString(p.Name):
			return bad("parameter %d: name %q is not a PyTorch parameter name of at most %d characters", i+1, bounded(p.Name), maxCustomNameLen)
		case seen[p.Name]:
			return bad("parameter %d: name %q is declared twice", i+1, p.Name)
		case len(p.Shape) == 0 || len(p.Shape) > maxCustomDims:
			return bad("parameter %q has %d dimensions, want 1..%d", p.Name, len(p.Shape), maxCustomDims)
		}
		seen[p.Name] = true
		n := 1
		for _, d := range p.Shape {
			if d < 1 || d > maxGraphParams || n > maxGraphParams/d {
				return bad("parameter %q has shape %v: every dimension at least 1, at most %d values", p.Name, p.Shape, maxGraphParams)
			}
			n *= d
		}
		if total += n; total > maxGraphParams {
			return bad("more than %d parameters", maxGraphParams)
		}
	}
	return s, nil
}

// bounded shortens a string from outside for an error message.
func bounded(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// customLayout lists the declared tensors in order.
func customLayout(s Spec) Layout {
	l := Layout{Version: CustomVersion, Arch: ArchCustom, Input: []int{s.Channels, s.Height, s.Width}, Classes: s.Classes,
		Code: s.CodeSHA256}
	off := 0
	for _, p := range s.Custom {
		n := 1
		for _, d := range p.Shape {
			n *= d
		}
		l.Params = append(l.Params, LayoutEntry{Name: p.Name, Shape: append([]int(nil), p.Shape...), Offset: off, Size: n})
		off += n
	}
	l.Total = off
	return l
}

// customInit draws the initial weights (see the comment at the top).
func customInit(l Layout, w []float32, seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), initStream))
	for _, e := range l.Params {
		dst := w[e.Offset : e.Offset+e.Size]
		if len(e.Shape) == 1 {
			if strings.HasSuffix(e.Name, ".weight") || e.Name == "weight" {
				for i := range dst {
					dst[i] = 1
				}
			}
			continue
		}
		fanIn := e.Size / e.Shape[0]
		std := math.Sqrt(2 / float64(fanIn))
		for i := range dst {
			dst[i] = float32(rng.NormFloat64() * std)
		}
	}
}

// newCustom builds the weights-only model of a normalised custom spec.
func newCustom(s Spec, seed int64) *Model {
	l := customLayout(s)
	m := &Model{spec: s, layout: l, w: make([]float32, l.Total)}
	customInit(l, m.w, seed)
	return m
}

// customCost is costOf["custom"]: the parameters only. This package cannot
// see inside the module, so activation memory and FLOPs are unknown (0):
// the model-size limits bound a custom model by its parameter count, and
// its trainer node by what the hospital's GPU holds.
func customCost(s Spec, batch int) Cost {
	return Cost{Params: int64(customLayout(s).Total), Batch: batch}
}

func init() { costOf[ArchCustom] = customCost }
