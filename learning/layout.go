package learning

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
)

// CNNVersion is the layout version of the "cnn" architecture with group
// normalisation (the default). A layout version changes whenever the order,
// names or shapes of the parameters change, so that vectors from
// incompatible models are never averaged together.
//
// concord.cnn/2 adds, after each 3×3 convolution's weight and bias, the
// per-channel scale ("…norm….weight", starting at 1) and shift ("…bias",
// starting at 0) of a GroupNorm over normGroups(channels) groups (eps 1e-5),
// applied to the convolution's output before its ReLU (and, in the residual
// blocks, before the skip or shortcut is added).
const CNNVersion = "concord.cnn/2"

// CNNVersionPlain is the layout of the "cnn" without normalisation
// (Spec.Norm "none"), as version 1 of the contract defined it.
const CNNVersionPlain = "concord.cnn/1"

// normGroups is the GroupNorm group count of a layer with c channels: the
// largest divisor of c that is at most min(8, c/2), or 1. GroupNorm rather
// than BatchNorm because it normalises each example on its own: no batch
// statistics to aggregate across hospitals or leak between examples, and
// per-example gradients (DP-SGD) stay per-example.
func normGroups(c int) int {
	g := min(8, c/2)
	for g > 1 && c%g != 0 {
		g--
	}
	return max(g, 1)
}

// ErrBadSpec is returned (wrapped) when a Spec cannot describe a model.
var ErrBadSpec = errors.New("invalid model spec")

// Spec describes a model to build.
type Spec struct {
	Arch      string // "cnn" (classifier, the default) or "unet" (binary segmentation)
	Channels  int    // 1 (grey) or 3 (RGB)
	Height    int    // 28..224, divisible by 4
	Width     int    // 28..224, divisible by 4
	Classes   int    // cnn: >= 2, binary problems use 2 with softmax; unet: 0 or 1 (one foreground)
	BaseWidth int    // channels of the first stage; 0 means 16 (cnn) or 8 (unet)
	Norm      string // cnn: "group" (GroupNorm after each 3×3 convolution, the default) or "none"
	// Layers is the declaration of arch "graph" (graph_spec.go); arch
	// "resnet18" or "resnet34" expands to one, recording the family in
	// Family and setting Arch to "graph".
	Layers []Layer
	Family string
	// Custom and CodeSHA256 describe arch "custom" (custom.go): the
	// module's parameters in order and its pinned hash.
	Custom     []CustomParam
	CodeSHA256 string
}

// LayoutEntry is one named tensor inside the flat weight vector.
type LayoutEntry struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	Offset int    `json:"offset"`
	Size   int    `json:"size"`
}

// Layout is the manifest of a flat weight vector: which tensor lives where.
// Aggregation and the model registry key on Hash().
type Layout struct {
	Version string        `json:"version"`
	Arch    string        `json:"arch"`
	Input   []int         `json:"input"`
	Classes int           `json:"classes"`
	Width   int           `json:"width"`
	Params  []LayoutEntry `json:"params"`
	Total   int           `json:"total"`
	// Family and Layers are set for declared graphs only (omitted
	// otherwise, so the cnn and unet manifests and hashes are unchanged):
	// the family a graph was expanded from, and the normalised declaration.
	Family string  `json:"family,omitempty"`
	Layers []Layer `json:"layers,omitempty"`
	// Code is the SHA-256 of a custom model's module (omitted otherwise).
	Code string `json:"code,omitempty"`
}

// JSON returns the manifest in its canonical JSON form.
func (l Layout) JSON() []byte {
	b, err := json.Marshal(l)
	if err != nil {
		// Layout holds only strings and ints; Marshal cannot fail.
		panic(fmt.Sprintf("learning: marshal layout: %v", err))
	}
	return b
}

// Hash is the hex SHA-256 of JSON(); two vectors may be combined only when
// their layouts have the same hash.
func (l Layout) Hash() string {
	s := sha256.Sum256(l.JSON())
	return hex.EncodeToString(s[:])
}

// Entry returns the entry with the given name.
func (l Layout) Entry(name string) (LayoutEntry, bool) {
	for _, e := range l.Params {
		if e.Name == name {
			return e, true
		}
	}
	return LayoutEntry{}, false
}

// ParseLayout decodes a manifest produced by Layout.JSON and checks that its
// offsets are contiguous.
func ParseLayout(b []byte) (Layout, error) {
	var l Layout
	if err := json.Unmarshal(b, &l); err != nil {
		return Layout{}, fmt.Errorf("parse layout: %w", err)
	}
	off := 0
	for _, e := range l.Params {
		n := 1
		for _, d := range e.Shape {
			n *= d
		}
		if e.Offset != off || e.Size != n {
			return Layout{}, fmt.Errorf("parse layout: entry %q has offset %d size %d, want %d and %d", e.Name, e.Offset, e.Size, off, n)
		}
		off += n
	}
	if off != l.Total {
		return Layout{}, fmt.Errorf("parse layout: total %d, entries sum to %d", l.Total, off)
	}
	return l, nil
}

func (s Spec) normalised() (Spec, error) {
	if s.Arch == "" {
		s.Arch = "cnn"
	}
	switch {
	case s.Arch == ArchCustom:
		return s.customNormalised()
	case len(s.Custom) != 0 || s.CodeSHA256 != "":
		return s, fmt.Errorf("%w: a parameter list and code hash are for arch custom only, not %q", ErrBadSpec, s.Arch)
	case s.Arch == "graph" || s.Arch == "resnet18" || s.Arch == "resnet34":
		return s.graphNormalised()
	case len(s.Layers) != 0 || s.Family != "":
		return s, fmt.Errorf("%w: layers are declared for arch graph only, not %q", ErrBadSpec, s.Arch)
	case s.Arch == "unet":
		return s.unetNormalised()
	}
	if s.BaseWidth == 0 {
		s.BaseWidth = 16
	}
	if s.Norm == "" {
		s.Norm = "group"
	}
	switch {
	case s.Norm != "group" && s.Norm != "none":
		return s, fmt.Errorf("%w: norm %q, want \"group\" or \"none\"", ErrBadSpec, s.Norm)
	case s.Arch != "cnn":
		return s, fmt.Errorf("%w: arch %q is not built; use cnn, unet, graph, resnet18, resnet34 or custom", ErrBadSpec, s.Arch)
	case s.Channels != 1 && s.Channels != 3:
		return s, fmt.Errorf("%w: channels %d, want 1 (grey) or 3 (RGB)", ErrBadSpec, s.Channels)
	case s.Height < 28 || s.Height > 224 || s.Width < 28 || s.Width > 224:
		return s, fmt.Errorf("%w: input %dx%d, want 28..224 on each side", ErrBadSpec, s.Height, s.Width)
	case s.Height%4 != 0 || s.Width%4 != 0:
		return s, fmt.Errorf("%w: input %dx%d, both sides must be divisible by 4", ErrBadSpec, s.Height, s.Width)
	case s.Classes < 2:
		return s, fmt.Errorf("%w: classes %d, want at least 2 (binary uses 2)", ErrBadSpec, s.Classes)
	case s.BaseWidth < 1 || s.BaseWidth > 1024:
		return s, fmt.Errorf("%w: base width %d, want 1..1024", ErrBadSpec, s.BaseWidth)
	}
	return s, nil
}

// cnnNames are the names of the cnn's tensors, indexed by the p…
// constants of cnn.go; cnnLayout orders them.
var cnnNames = [...]string{
	pStemW: "stem.conv.weight", pStemB: "stem.conv.bias",
	pStemNW: "stem.norm.weight", pStemNB: "stem.norm.bias",
	pB1C1W: "block1.conv1.weight", pB1C1B: "block1.conv1.bias",
	pB1N1W: "block1.norm1.weight", pB1N1B: "block1.norm1.bias",
	pB1C2W: "block1.conv2.weight", pB1C2B: "block1.conv2.bias",
	pB1N2W: "block1.norm2.weight", pB1N2B: "block1.norm2.bias",
	pB2C1W: "block2.conv1.weight", pB2C1B: "block2.conv1.bias",
	pB2N1W: "block2.norm1.weight", pB2N1B: "block2.norm1.bias",
	pB2C2W: "block2.conv2.weight", pB2C2B: "block2.conv2.bias",
	pB2N2W: "block2.norm2.weight", pB2N2B: "block2.norm2.bias",
	pB2ScW: "block2.shortcut.weight", pB2ScB: "block2.shortcut.bias",
	pFc1W: "head.fc1.weight", pFc1B: "head.fc1.bias",
	pFc2W: "head.fc2.weight", pFc2B: "head.fc2.bias",
}

// cnnLayout lists the "cnn" parameters in the order fixed by the shared
// contract with the PyTorch reference trainer.
func cnnLayout(s Spec) Layout {
	w, c, k := s.BaseWidth, s.Channels, s.Classes
	type p struct {
		i     int
		shape []int
	}
	conv := func(wi, cout, cin, ks int) []p {
		ps := []p{{wi, []int{cout, cin, ks, ks}}, {wi + 1, []int{cout}}}
		if s.Norm == "group" && ks == 3 {
			ps = append(ps, p{wi + 2, []int{cout}}, p{wi + 3, []int{cout}})
		}
		return ps
	}
	var ps []p
	ps = append(ps, conv(pStemW, w, c, 3)...)
	ps = append(ps, conv(pB1C1W, w, w, 3)...)
	ps = append(ps, conv(pB1C2W, w, w, 3)...)
	ps = append(ps, conv(pB2C1W, 2*w, w, 3)...)
	ps = append(ps, conv(pB2C2W, 2*w, 2*w, 3)...)
	ps = append(ps, conv(pB2ScW, 2*w, w, 1)...)
	ps = append(ps, p{pFc1W, []int{4 * w, 2 * w}}, p{pFc1B, []int{4 * w}},
		p{pFc2W, []int{k, 4 * w}}, p{pFc2B, []int{k}})
	version := CNNVersion
	if s.Norm == "none" {
		version = CNNVersionPlain
	}
	l := Layout{Version: version, Arch: "cnn", Input: []int{c, s.Height, s.Width}, Classes: k, Width: w}
	off := 0
	for _, e := range ps {
		n := 1
		for _, d := range e.shape {
			n *= d
		}
		l.Params = append(l.Params, LayoutEntry{Name: cnnNames[e.i], Shape: e.shape, Offset: off, Size: n})
		off += n
	}
	l.Total = off
	return l
}

// ParamCount is the length of the weight vector New would allocate for
// spec, computed from the spec alone so that a caller (the coordinator,
// checking a submitted job) can refuse a model before allocating it. It
// reports ErrBadSpec for a spec New would refuse, and for a count that does
// not fit in 64 bits.
func ParamCount(spec Spec) (uint64, error) {
	s, err := spec.normalised()
	if err != nil {
		return 0, err
	}
	if s.Arch == "graph" {
		pl, err := compileGraph(s)
		if err != nil {
			return 0, err
		}
		return uint64(pl.total), nil
	}
	if s.Arch == ArchCustom {
		return uint64(customLayout(s).Total), nil
	}
	var c paramCounter
	if s.Arch == "unet" {
		for _, cv := range unetConvs(s.Channels, s.BaseWidth) {
			c.conv(cv.cout, cv.cin, cv.kern, false)
		}
	} else {
		w, k, norm := s.BaseWidth, s.Classes, s.Norm == "group"
		c.conv(w, s.Channels, 3, norm)      // stem
		c.conv(w, w, 3, norm)               // block1.conv1
		c.conv(w, w, 3, norm)               // block1.conv2
		c.conv(2*w, w, 3, norm)             // block2.conv1
		c.conv(2*w, 2*w, 3, norm)           // block2.conv2
		c.conv(2*w, w, 1, false)            // block2.shortcut
		c.add(c.mul(4*w, 2*w), uint64(4*w)) // head.fc1
		c.add(c.mul(k, 4*w), uint64(k))     // head.fc2
	}
	if c.overflow {
		return 0, fmt.Errorf("%w: the parameter count does not fit in 64 bits", ErrBadSpec)
	}
	return c.n, nil
}

// paramCounter sums tensor sizes, remembering an overflow instead of
// wrapping, so that absurd specs are reported rather than undercounted.
type paramCounter struct {
	n        uint64
	overflow bool
}

func (c *paramCounter) mul(dims ...int) uint64 {
	p := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(p, uint64(d))
		if hi != 0 || d < 0 {
			c.overflow = true
			return 0
		}
		p = lo
	}
	return p
}

func (c *paramCounter) add(sizes ...uint64) {
	for _, v := range sizes {
		var carry uint64
		c.n, carry = bits.Add64(c.n, v, 0)
		c.overflow = c.overflow || carry != 0
	}
}

// conv counts a convolution's weight and bias, and, for a normalised 3×3
// convolution, its normalisation scale and shift (see cnnLayout).
func (c *paramCounter) conv(cout, cin, k int, norm bool) {
	c.add(c.mul(cout, cin, k, k), uint64(cout))
	if norm && k == 3 {
		c.add(uint64(cout), uint64(cout))
	}
}
