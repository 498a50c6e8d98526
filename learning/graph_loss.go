package learning

import "math"

// loss returns the example's loss for output z and writes ∂loss/∂z to dz:
// softmax cross-entropy for a classifier; for segmentation, the unet's
// BCE + 1 − Dice with one output channel, and with k ≥ 2 channels (the
// mask holds a class index per pixel) the pixel-mean cross-entropy plus
// 1 − the mean over classes of the soft Dice (smoothing 1), as graph.py.
func (ws *graphWork) loss(z []float32, y int, dz []float32) float64 {
	pl := ws.n.pl
	switch {
	case !pl.seg:
		softmax(z, dz)
		// log-softmax directly, for accuracy when p[y] is tiny
		m := z[0]
		for _, v := range z {
			m = max(m, v)
		}
		var s float64
		for _, v := range z {
			s += math.Exp(float64(v - m))
		}
		l := float64(m) + math.Log(s) - float64(z[y])
		dz[y]--
		return l
	case pl.k == 1:
		return segLoss(z, ws.mask, dz)
	default:
		return multiSegLoss(z, ws.mask, dz, pl.k, ws.segTmp)
	}
}

// multiSegLoss is the k-class segmentation loss of z (k×hw logits) against
// the class indices in mask (hw), with its gradient in dz; tmp is scratch
// of 5k values.
func multiSegLoss(z, mask, dz []float32, k int, tmp []float64) float64 {
	hw := len(mask)
	for p := 0; p < hw; p++ {
		pixelSoftmax(z, dz, p, hw, k)
	}
	var ce float64
	clear(tmp)
	inter, ps, ts, den, g := tmp[:k], tmp[k:2*k], tmp[2*k:3*k], tmp[3*k:4*k], tmp[4*k:5*k]
	for p, t := range mask {
		c := int(t)
		ce -= math.Log(max(float64(dz[c*hw+p]), 1e-30))
		inter[c] += float64(dz[c*hw+p])
		ts[c]++
		for j := 0; j < k; j++ {
			ps[j] += float64(dz[j*hw+p])
		}
	}
	var dice float64
	for c := 0; c < k; c++ {
		den[c] = ps[c] + ts[c] + 1
		dice += (2*inter[c] + 1) / den[c]
	}
	invHW, invK := 1/float64(hw), 1/float64(k)
	loss := ce*invHW + 1 - dice*invK
	// g_c = ∂(−mean Dice)/∂p_c at each pixel; then through the softmax:
	// ∂/∂z_c = p_c·(g_c − Σ_j p_j·g_j), plus (p_c − [c = t])/hw from the
	// cross-entropy.
	for p, t := range mask {
		tc := int(t)
		var dot float64
		for c := 0; c < k; c++ {
			tv := 0.0
			if c == tc {
				tv = 1
			}
			g[c] = -invK * (2*tv*den[c] - (2*inter[c] + 1)) / (den[c] * den[c])
			dot += float64(dz[c*hw+p]) * g[c]
		}
		for c := 0; c < k; c++ {
			pc := float64(dz[c*hw+p])
			v := pc * (g[c] - dot)
			if c == tc {
				pc--
			}
			dz[c*hw+p] = float32(v + pc*invHW)
		}
	}
	return loss
}
