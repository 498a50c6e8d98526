package learning

// The cost of the fixed architectures is counted like graphCost counts a
// declared graph, as a batched trainer (PyTorch's autograd) holds it: every
// output a forward pass keeps for the backward pass (convolution,
// normalisation, activation, join and pooling outputs), doubled for their
// gradients, at the batch size; and the FLOPs of one forward pass of one
// example, a multiply-add counted as two. Our CPU trainer holds less (it
// runs each worker's examples one at a time), so the figure is an upper
// bound for it and close to what a GPU node needs.

// costTally adds up one example's kept outputs and forward FLOPs.
type costTally struct{ acts, flops int64 }

// conv counts a k×k convolution from cin to cout channels with an h×w
// output, keeping kept tensors of its output's size (the convolution's, its
// normalisation's and its activation's).
func (t *costTally) conv(cout, cin, k, h, w, kept int) {
	n := int64(cout * h * w)
	t.acts += int64(kept) * n
	t.flops += 2 * n * int64(cin*k*k)
	if kept == 3 { // normalised: statistics, scale and shift
		t.flops += 4 * n
	}
}

// elementwise counts an output of n values computed from inputs other
// operations' costs already hold (pooling, joins, activations, upsampling),
// at ops operations per value.
func (t *costTally) elementwise(n, ops int) {
	t.acts += int64(n)
	t.flops += int64(n * ops)
}

// dense counts a fully connected layer and the activation after it.
func (t *costTally) dense(out, in, kept int) {
	t.acts += int64(kept * out)
	t.flops += 2 * int64(out*in)
}

func (t costTally) cost(params, batch int) Cost {
	return Cost{Params: int64(params), Batch: batch, ActivationBytes: 2 * 4 * t.acts * int64(batch), FLOPsPerExample: t.flops}
}

// cnnCost is costOf["cnn"]; the structure is cnnNet.forward's.
func cnnCost(s Spec, batch int) Cost {
	var t costTally
	h, w, c, b := s.Height, s.Width, s.Channels, s.BaseWidth
	kept := 2 // convolution and ReLU
	if s.Norm == "group" {
		kept = 3
	}
	t.conv(b, c, 3, h, w, kept) // stem
	t.conv(b, b, 3, h, w, kept) // block 1
	t.conv(b, b, 3, h, w, kept)
	t.elementwise(2*b*h*w, 1)         // residual sum and ReLU
	t.elementwise(b*h*w/4, 4)         // 2×2 max pool
	t.conv(2*b, b, 3, h/2, w/2, kept) // block 2
	t.conv(2*b, 2*b, 3, h/2, w/2, kept)
	t.conv(2*b, b, 1, h/2, w/2, 1) // shortcut
	t.elementwise(2*2*b*h*w/4, 1)  // sum and ReLU
	t.elementwise(2*b*h*w/16, 4)   // max pool
	t.elementwise(2*b, h*w/16)     // global average
	t.dense(4*b, 2*b, 2)
	t.dense(s.Classes, 4*b, 2) // logits and softmax
	return t.cost(cnnLayout(s).Total, batch)
}

// unetCost is costOf["unet"]; the structure is the one unet.go describes.
func unetCost(s Spec, batch int) Cost {
	var t costTally
	h, w, c, b := s.Height, s.Width, s.Channels, s.BaseWidth
	h2, w2, h4, w4 := h/2, w/2, h/4, w/4
	t.conv(b, c, 3, h, w, 2) // enc1
	t.conv(b, b, 3, h, w, 2)
	t.elementwise(b*h2*w2, 4) // pool
	t.conv(2*b, b, 3, h2, w2, 2)
	t.conv(2*b, 2*b, 3, h2, w2, 2)
	t.elementwise(2*b*h4*w4, 4)
	t.conv(4*b, 2*b, 3, h4, w4, 2) // mid
	t.conv(4*b, 4*b, 3, h4, w4, 2)
	t.conv(2*b, 4*b, 1, h4, w4, 1) // up2 projection
	t.elementwise(2*b*h2*w2, 1)    // upsampling
	t.elementwise(4*b*h2*w2, 1)    // concatenation
	t.conv(2*b, 4*b, 3, h2, w2, 2) // dec2
	t.conv(2*b, 2*b, 3, h2, w2, 2)
	t.conv(b, 2*b, 1, h2, w2, 1) // up1 projection
	t.elementwise(b*h*w, 1)
	t.elementwise(2*b*h*w, 1)
	t.conv(b, 2*b, 3, h, w, 2) // dec1
	t.conv(b, b, 3, h, w, 2)
	t.conv(1, b, 1, h, w, 2) // head and sigmoid
	return t.cost(unetLayout(s).Total, batch)
}

func init() {
	costOf["cnn"] = cnnCost
	costOf["unet"] = unetCost
}
