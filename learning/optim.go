package learning

import "math"

// optimizer is SGD with momentum or Adam; its state lives for one Train
// call (each federated round starts fresh, as in FedAvg/FedProx).
type optimizer struct {
	adam     bool
	lr       float64
	momentum float32
	v, s     []float32
	t        int
}

func newOptimizer(c TrainConfig, p int) *optimizer {
	o := &optimizer{adam: c.Optimizer == "adam", lr: c.LR, momentum: float32(c.Momentum)}
	if o.adam || c.Momentum != 0 {
		o.v = make([]float32, p)
	}
	if o.adam {
		o.s = make([]float32, p)
	}
	return o
}

// next starts a step; update then applies its gradient to any split of
// the weights, in any order, with the same bits as one update of them all.
func (o *optimizer) next() { o.t++ }

// update applies this step's gradient to w[lo:hi].
func (o *optimizer) update(lo, hi int, w, g []float32) {
	w, g = w[lo:hi], g[lo:hi]
	if !o.adam {
		lr := float32(o.lr)
		if o.v == nil {
			for i := range w {
				w[i] -= lr * g[i]
			}
			return
		}
		v := o.v[lo:hi]
		for i := range w {
			v[i] = o.momentum*v[i] + g[i]
			w[i] -= lr * v[i]
		}
		return
	}
	const b1, b2, eps = 0.9, 0.999, 1e-8
	c1 := 1 - math.Pow(b1, float64(o.t))
	c2 := 1 - math.Pow(b2, float64(o.t))
	stepSize := float32(o.lr / c1)
	sq := float32(math.Sqrt(c2))
	v, s := o.v[lo:hi], o.s[lo:hi]
	if n8 := len(w) / 8; useKernel && n8 > 0 {
		k := [8]float32{b1, 1 - b1, b2, 1 - b2, stepSize, sq, eps}
		adamAVX(&w[0], &g[0], &v[0], &s[0], n8, &k)
		w, g, v, s = w[8*n8:], g[8*n8:], v[8*n8:], s[8*n8:]
	}
	for i := range w {
		gi := g[i]
		v[i] = b1*v[i] + (1-b1)*gi
		s[i] = b2*s[i] + (1-b2)*gi*gi
		w[i] -= stepSize * v[i] / (float32(math.Sqrt(float64(s[i])))/sq + eps)
	}
}
