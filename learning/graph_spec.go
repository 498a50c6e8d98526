package learning

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// GraphVersion is the layout version of a declared graph ("graph", and the
// families "resnet18" and "resnet34", which expand to one). The manifest
// carries the normalised declaration ("layers"), so the layout hash changes
// with any change of the graph, not only of its parameter shapes.
const GraphVersion = "concord.graph/1"

// Bounds on a declaration, checked before anything is allocated. The
// activation bound is the PyTorch trainer's (graph.py MAX_ACTIVATION).
const (
	maxLayers      = 4096
	maxActivation  = 1 << 28 // values in one layer's output for one example
	maxGraphParams = 1 << 31 // values in the weight vector
	maxGraphSide   = 1024    // input height and width
	maxGraphChans  = 64      // input channels
	maxLayerOut    = 1 << 16 // conv and dense outputs
	maxKernel      = 64      // kernel, stride, padding, dilation
	maxScale       = 16      // upsample factor
)

// Layer is one layer of a declared graph (Spec.Layers). Zero fields take
// the contract's defaults when the spec is normalised: stride, dilation and
// groups (conv) 1, bias true, eps 1e-5, slope 0.01, scale 2, pooling stride
// = kernel, inputs the previous layer (or "input" for the first). A field
// that does not belong to the op is refused, so a typo cannot be silently
// ignored.
type Layer struct {
	Name     string   `json:"name"`
	Op       string   `json:"op"`
	Inputs   []string `json:"inputs"`
	Out      int      `json:"out"`
	Kernel   int      `json:"kernel"`
	Stride   int      `json:"stride"`
	Padding  int      `json:"padding"`
	Dilation int      `json:"dilation"`
	Groups   int      `json:"groups"`
	Bias     *bool    `json:"bias"`
	Eps      float64  `json:"eps"`
	Slope    float64  `json:"slope"`
	P        float64  `json:"p"`
	Scale    int      `json:"scale"`
}

// opFields lists, per op, the fields a layer of that op may set (besides
// name, op and inputs); it is also the set the manifest writes.
var opFields = map[string][]string{
	"conv":          {"out", "kernel", "stride", "padding", "dilation", "groups", "bias"},
	"groupnorm":     {"groups", "eps"},
	"layernorm":     {"eps"},
	"relu":          {},
	"sigmoid":       {},
	"tanh":          {},
	"leakyrelu":     {"slope"},
	"maxpool":       {"kernel", "stride", "padding"},
	"avgpool":       {"kernel", "stride", "padding"},
	"globalavgpool": {},
	"globalmaxpool": {},
	"add":           {},
	"concat":        {},
	"dropout":       {"p"},
	"dense":         {"out", "bias"},
	"upsample":      {"scale"},
}

// fields returns the layer's optional fields by name, for the manifest and
// for the check that no foreign field is set.
func (l Layer) fields() map[string]any {
	m := map[string]any{"out": l.Out, "kernel": l.Kernel, "stride": l.Stride, "padding": l.Padding,
		"dilation": l.Dilation, "groups": l.Groups, "eps": l.Eps, "slope": l.Slope, "p": l.P, "scale": l.Scale}
	if l.Bias != nil {
		m["bias"] = *l.Bias
	}
	return m
}

// MarshalJSON writes the name, op, inputs and exactly the op's fields, so
// that the manifest reads like the declaration with its defaults filled in.
func (l Layer) MarshalJSON() ([]byte, error) {
	all := l.fields()
	m := map[string]any{"name": l.Name, "op": l.Op, "inputs": l.Inputs}
	for _, f := range opFields[l.Op] {
		m[f] = all[f]
	}
	return json.Marshal(m)
}

var layerName = regexp.MustCompile(`^[a-z0-9_]+$`)

// normalisedLayers checks a declaration and returns it with every default
// filled in; errors name the layer.
func normalisedLayers(ls []Layer) ([]Layer, error) {
	if len(ls) == 0 || len(ls) > maxLayers {
		return nil, fmt.Errorf("%w: a graph needs 1..%d layers, got %d", ErrBadSpec, maxLayers, len(ls))
	}
	out := make([]Layer, len(ls))
	seen := map[string]bool{"input": true}
	prev := "input"
	yes := true
	for i, l := range ls {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: layer %d (%q): %s", ErrBadSpec, i+1, l.Name, fmt.Sprintf(format, a...))
		}
		switch {
		case !layerName.MatchString(l.Name) || len(l.Name) > 64:
			return nil, bad("a name is 1..64 characters of a-z, 0-9 and _")
		case l.Name == "input":
			return nil, bad("the name input is reserved for the model's input")
		case seen[l.Name]:
			return nil, bad("the name is used by an earlier layer")
		}
		allowed, ok := opFields[l.Op]
		if !ok {
			return nil, bad("op %q is not one of conv, groupnorm, layernorm, relu, sigmoid, tanh, leakyrelu, maxpool, avgpool, "+
				"globalavgpool, globalmaxpool, add, concat, dropout, dense, upsample", l.Op)
		}
		for f, v := range l.fields() {
			if !slices.Contains(allowed, f) && v != 0 && v != 0.0 {
				return nil, bad("field %s does not apply to op %s", f, l.Op)
			}
		}
		l.Inputs = slices.Clone(l.Inputs)
		if len(l.Inputs) == 0 {
			l.Inputs = []string{prev}
		}
		if len(l.Inputs) > 64 {
			return nil, bad("%d inputs, at most 64", len(l.Inputs))
		}
		for _, in := range l.Inputs {
			if !seen[in] {
				return nil, bad("input %q is not an earlier layer or input", in)
			}
		}
		multi := l.Op == "add" || l.Op == "concat"
		if multi && len(l.Inputs) < 2 {
			return nil, bad("%s needs at least two inputs", l.Op)
		}
		if !multi && len(l.Inputs) != 1 {
			return nil, bad("%s takes one input, got %d", l.Op, len(l.Inputs))
		}
		def := func(v *int, d int) {
			if *v == 0 {
				*v = d
			}
		}
		switch l.Op {
		case "conv":
			def(&l.Stride, 1)
			def(&l.Dilation, 1)
			def(&l.Groups, 1)
		case "maxpool", "avgpool":
			def(&l.Stride, l.Kernel)
		case "upsample":
			def(&l.Scale, 2)
		case "groupnorm", "layernorm":
			if l.Eps == 0 {
				l.Eps = normEps
			}
		case "leakyrelu":
			if l.Slope == 0 {
				l.Slope = 0.01
			}
		}
		if slices.Contains(allowed, "bias") && l.Bias == nil {
			l.Bias = &yes
		}
		if err := l.checkRanges(); err != nil {
			return nil, bad("%v", err)
		}
		out[i] = l
		seen[l.Name] = true
		prev = l.Name
	}
	return out, nil
}

// checkRanges bounds the numeric fields of a layer whose defaults are in.
func (l Layer) checkRanges() error {
	in := func(name string, v, lo, hi int) error {
		if v < lo || v > hi {
			return fmt.Errorf("%s %d, want %d..%d", name, v, lo, hi)
		}
		return nil
	}
	var errs []error
	switch l.Op {
	case "conv":
		errs = append(errs, in("out", l.Out, 1, maxLayerOut), in("kernel", l.Kernel, 1, maxKernel), in("stride", l.Stride, 1, maxKernel),
			in("padding", l.Padding, 0, maxKernel), in("dilation", l.Dilation, 1, maxKernel), in("groups", l.Groups, 1, maxLayerOut))
	case "dense":
		errs = append(errs, in("out", l.Out, 1, maxLayerOut))
	case "groupnorm":
		errs = append(errs, in("groups", l.Groups, 1, maxLayerOut))
	case "maxpool", "avgpool":
		errs = append(errs, in("kernel", l.Kernel, 1, maxKernel), in("stride", l.Stride, 1, maxKernel), in("padding", l.Padding, 0, maxKernel))
		if 2*l.Padding > l.Kernel {
			errs = append(errs, fmt.Errorf("padding %d exceeds half the kernel %d", l.Padding, l.Kernel))
		}
	case "upsample":
		errs = append(errs, in("scale", l.Scale, 1, maxScale))
	case "dropout":
		if !(l.P >= 0 && l.P < 1) {
			errs = append(errs, fmt.Errorf("p %v, want 0 <= p < 1", l.P))
		}
	case "leakyrelu":
		if !(l.Slope > -1e6 && l.Slope < 1e6) {
			errs = append(errs, fmt.Errorf("slope %v, want a finite number", l.Slope))
		}
	}
	if l.Op == "groupnorm" || l.Op == "layernorm" {
		if !(l.Eps > 0 && l.Eps < 1) {
			errs = append(errs, fmt.Errorf("eps %v, want 0 < eps < 1", l.Eps))
		}
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// graphNormalised checks a graph spec (arch "graph", or a family expanded
// to one) and returns it with the declaration normalised.
func (s Spec) graphNormalised() (Spec, error) {
	switch s.Arch {
	case "resnet18", "resnet34":
		if len(s.Layers) != 0 {
			return s, fmt.Errorf("%w: arch %s declares its own layers; model.layers is for arch graph", ErrBadSpec, s.Arch)
		}
		if s.BaseWidth == 0 {
			s.BaseWidth = 64
		}
		if s.BaseWidth < 1 || s.BaseWidth > 256 {
			return s, fmt.Errorf("%w: base width %d, want 1..256", ErrBadSpec, s.BaseWidth)
		}
		if s.Height%32 != 0 || s.Width%32 != 0 || s.Height < 32 || s.Width < 32 {
			return s, fmt.Errorf("%w: %s input %dx%d, both sides must be multiples of 32", ErrBadSpec, s.Arch, s.Height, s.Width)
		}
		if s.Classes < 2 {
			return s, fmt.Errorf("%w: %s classes %d, want at least 2 (binary uses 2)", ErrBadSpec, s.Arch, s.Classes)
		}
		s.Family, s.Layers = s.Arch, resnetLayers(s.Arch, s.BaseWidth, s.Classes)
		s.Arch = "graph"
	case "graph":
		if s.Family != "" && s.Family != "resnet18" && s.Family != "resnet34" {
			return s, fmt.Errorf("%w: family %q, want resnet18, resnet34 or none", ErrBadSpec, s.Family)
		}
	}
	if s.Norm != "" {
		return s, fmt.Errorf("%w: norm %q applies to the cnn; a graph declares its normalisation layers", ErrBadSpec, s.Norm)
	}
	switch {
	case s.Channels < 1 || s.Channels > maxGraphChans:
		return s, fmt.Errorf("%w: channels %d, want 1..%d", ErrBadSpec, s.Channels, maxGraphChans)
	case s.Height < 1 || s.Height > maxGraphSide || s.Width < 1 || s.Width > maxGraphSide:
		return s, fmt.Errorf("%w: input %dx%d, want 1..%d on each side", ErrBadSpec, s.Height, s.Width, maxGraphSide)
	case s.Classes < 1 || s.Classes > maxLayerOut:
		return s, fmt.Errorf("%w: classes %d, want 1..%d", ErrBadSpec, s.Classes, maxLayerOut)
	}
	ls, err := normalisedLayers(s.Layers)
	if err != nil {
		return s, err
	}
	s.Layers = ls
	if _, err := compileGraph(s); err != nil {
		return s, err
	}
	return s, nil
}
