package jobspec

import (
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The declared architectures: model.arch graph with model.layers, and the
// families resnet18 and resnet34 that package learning expands to a
// declaration from model.base_width. Package learning owns the vocabulary
// and checks the declaration (names, inputs, shapes, sizes); this file
// carries it between the YAML, the wire and learning.Spec, and checks what
// only a job spec can get wrong.
const (
	ArchGraph    = "graph"
	ArchResNet18 = "resnet18"
	ArchResNet34 = "resnet34"
)

// graphArch reports whether arch is a declared architecture.
func graphArch(arch string) bool {
	return arch == ArchGraph || arch == ArchResNet18 || arch == ArchResNet34
}

// Bounds of a declared model's input, wider than the cnn's: ResNets are
// trained at 224×224 and above.
const (
	minGraphSide = 8
	maxGraphSide = 1024
	maxLayers    = 4096
)

// layerFile is one entry of model.layers in a job file.
type layerFile struct {
	Name     string   `yaml:"name"`
	Op       string   `yaml:"op"`
	Inputs   []string `yaml:"inputs"`
	Out      uint32   `yaml:"out"`
	Kernel   uint32   `yaml:"kernel"`
	Stride   uint32   `yaml:"stride"`
	Padding  uint32   `yaml:"padding"`
	Dilation uint32   `yaml:"dilation"`
	Groups   uint32   `yaml:"groups"`
	Bias     *bool    `yaml:"bias"`
	Eps      float64  `yaml:"eps"`
	Slope    float64  `yaml:"slope"`
	P        float64  `yaml:"p"`
	Scale    uint32   `yaml:"scale"`
}

func layersToWire(ls []layerFile) []*pb.LayerSpec {
	var out []*pb.LayerSpec
	for _, l := range ls {
		out = append(out, &pb.LayerSpec{Name: l.Name, Op: l.Op, Inputs: l.Inputs, Out: l.Out, Kernel: l.Kernel, Stride: l.Stride,
			Padding: l.Padding, Dilation: l.Dilation, Groups: l.Groups, Bias: l.Bias, Eps: l.Eps, Slope: l.Slope, P: l.P, Scale: l.Scale})
	}
	return out
}

func layersToLearning(ls []*pb.LayerSpec) []learning.Layer {
	var out []learning.Layer
	for _, l := range ls {
		ll := learning.Layer{Name: l.GetName(), Op: l.GetOp(), Inputs: l.GetInputs(), Out: int(l.GetOut()), Kernel: int(l.GetKernel()),
			Stride: int(l.GetStride()), Padding: int(l.GetPadding()), Dilation: int(l.GetDilation()), Groups: int(l.GetGroups()),
			Eps: l.GetEps(), Slope: l.GetSlope(), P: l.GetP(), Scale: int(l.GetScale())}
		if l.Bias != nil {
			b := l.GetBias()
			ll.Bias = &b
		}
		out = append(out, ll)
	}
	return out
}

// graphDefaults fills a declared model's defaults: resnets are 64 wide;
// a graph declares its own widths, so base_width stays unset.
func graphDefaults(m *pb.ModelSpec) {
	if m.Arch != ArchGraph {
		m.BaseWidth = orU(m.BaseWidth, 64)
	}
}

// graphModel checks what the job spec decides for a declared model; the
// declaration itself is checked by learning (ParamCount, after this).
func (v *validator) graphModel(m *pb.ModelSpec) bool {
	ok := true
	if m.Arch == ArchGraph {
		if len(m.Layers) == 0 {
			v.bad("model.layers is empty: arch graph needs a declaration (see the README's Models section), or use arch resnet18")
			ok = false
		}
		if m.BaseWidth != 0 {
			v.bad("model.base_width is %d: a graph declares its widths in model.layers; remove it", m.BaseWidth)
			ok = false
		}
	} else {
		ok = v.uintIn("model.base_width", uint64(m.BaseWidth), 1, 256) && ok
		if m.Height%32 != 0 || m.Width%32 != 0 {
			v.bad("model.height and model.width are %dx%d: %s needs multiples of 32", m.Height, m.Width, m.Arch)
			ok = false
		}
	}
	if len(m.Layers) > maxLayers {
		v.bad("model.layers has %d layers: at most %d", len(m.Layers), maxLayers)
		ok = false
	}
	if m.Norm != "" {
		v.bad("model.norm is %s: it applies to the cnn only; a declared model has its own normalisation layers", quote(m.Norm))
		ok = false
	}
	for _, side := range []struct {
		field string
		x     uint32
	}{{"model.height", m.Height}, {"model.width", m.Width}} {
		ok = v.uintIn(side.field, uint64(side.x), minGraphSide, maxGraphSide) && ok
	}
	return v.uintIn("model.classes", uint64(m.Classes), 1, maxClasses) && ok
}
