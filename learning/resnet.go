package learning

import "fmt"

// resnetBlocks is the number of BasicBlocks per stage of each family.
var resnetBlocks = map[string][4]int{"resnet18": {2, 2, 2, 2}, "resnet34": {3, 4, 6, 3}}

// resnetGroups is the GroupNorm group count of a ResNet layer with c
// channels: the largest divisor of c that is at most min(32, c/4), or 1.
// 32 groups is the GroupNorm paper's choice for ResNets at full width (64
// channels and up give 16 and 32 groups); at least four channels per group
// keeps each group's statistics from resting on one or two channels when a
// small base width is chosen.
func resnetGroups(c int) int {
	g := min(32, c/4)
	for g > 1 && c%g != 0 {
		g--
	}
	return max(g, 1)
}

// resnetLayers is the declaration a family expands to: the ResNet of He et
// al. with GroupNorm for BatchNorm. A 7×7 stride-2 stem convolution, GN,
// ReLU and a 3×3 stride-2 max pool; four stages of BasicBlocks of widths
// w, 2w, 4w, 8w (the first block of stages 2-4 halves the resolution); a
// block is conv3×3-GN-ReLU-conv3×3-GN plus the shortcut (a 1×1 strided
// convolution and GN where the shape changes), then ReLU; global average
// pooling and a dense layer. Convolutions have no bias (the GroupNorm after
// each has one). Input sides must be multiples of 32 (the total stride).
func resnetLayers(family string, w, classes int) []Layer {
	no := false
	conv := func(name string, out, k, stride, pad int, in string) Layer {
		return Layer{Name: name, Op: "conv", Out: out, Kernel: k, Stride: stride, Padding: pad, Bias: &no, Inputs: []string{in}}
	}
	gn := func(name string, c int) Layer { return Layer{Name: name, Op: "groupnorm", Groups: resnetGroups(c)} }
	ls := []Layer{
		conv("stem", w, 7, 2, 3, "input"),
		gn("stem_gn", w),
		{Name: "stem_act", Op: "relu"},
		{Name: "pool0", Op: "maxpool", Kernel: 3, Stride: 2, Padding: 1},
	}
	prev, cin := "pool0", w
	for s, n := range resnetBlocks[family] {
		cout := w << s
		for b := range n {
			p := fmt.Sprintf("l%db%d", s+1, b)
			stride := 1
			if s > 0 && b == 0 {
				stride = 2
			}
			ls = append(ls,
				conv(p+"_c1", cout, 3, stride, 1, prev), gn(p+"_g1", cout), Layer{Name: p + "_a1", Op: "relu"},
				conv(p+"_c2", cout, 3, 1, 1, p+"_a1"), gn(p+"_g2", cout))
			short := prev
			if stride != 1 || cin != cout {
				ls = append(ls, conv(p+"_dc", cout, 1, stride, 0, prev), gn(p+"_dg", cout))
				short = p + "_dg"
			}
			ls = append(ls, Layer{Name: p + "_add", Op: "add", Inputs: []string{p + "_g2", short}}, Layer{Name: p + "_out", Op: "relu"})
			prev, cin = p+"_out", cout
		}
	}
	return append(ls, Layer{Name: "gap", Op: "globalavgpool"}, Layer{Name: "fc", Op: "dense", Out: classes})
}
