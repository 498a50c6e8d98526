package learning

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// CNNVersion is the layout version of the "cnn" architecture. It changes
// whenever the order, names or shapes of the parameters change, so that
// vectors from incompatible models are never averaged together.
const CNNVersion = "concord.cnn/1"

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
	if s.Arch == "unet" {
		return s.unetNormalised()
	}
	if s.BaseWidth == 0 {
		s.BaseWidth = 16
	}
	switch {
	case s.Arch != "cnn":
		return s, fmt.Errorf("%w: arch %q is not built; use \"cnn\" or \"unet\"", ErrBadSpec, s.Arch)
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

// cnnLayout lists the "cnn" parameters in the order fixed by the shared
// contract with the PyTorch reference trainer.
func cnnLayout(s Spec) Layout {
	w, c, k := s.BaseWidth, s.Channels, s.Classes
	type p struct {
		name  string
		shape []int
	}
	ps := []p{
		{"stem.conv.weight", []int{w, c, 3, 3}}, {"stem.conv.bias", []int{w}},
		{"block1.conv1.weight", []int{w, w, 3, 3}}, {"block1.conv1.bias", []int{w}},
		{"block1.conv2.weight", []int{w, w, 3, 3}}, {"block1.conv2.bias", []int{w}},
		{"block2.conv1.weight", []int{2 * w, w, 3, 3}}, {"block2.conv1.bias", []int{2 * w}},
		{"block2.conv2.weight", []int{2 * w, 2 * w, 3, 3}}, {"block2.conv2.bias", []int{2 * w}},
		{"block2.shortcut.weight", []int{2 * w, w, 1, 1}}, {"block2.shortcut.bias", []int{2 * w}},
		{"head.fc1.weight", []int{4 * w, 2 * w}}, {"head.fc1.bias", []int{4 * w}},
		{"head.fc2.weight", []int{k, 4 * w}}, {"head.fc2.bias", []int{k}},
	}
	l := Layout{Version: CNNVersion, Arch: "cnn", Input: []int{c, s.Height, s.Width}, Classes: k, Width: w}
	off := 0
	for _, e := range ps {
		n := 1
		for _, d := range e.shape {
			n *= d
		}
		l.Params = append(l.Params, LayoutEntry{Name: e.name, Shape: e.shape, Offset: off, Size: n})
		off += n
	}
	l.Total = off
	return l
}
