package learning

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrData is returned (wrapped) when a Dataset does not fit the model.
var ErrData = errors.New("dataset does not fit the model")

// chunkSize is the number of examples whose gradients one worker sums before
// the chunks are added together in order. It is a constant, not a function
// of the core count, so results do not depend on the machine.
const chunkSize = 8

// Dataset is a set of normalised images, N×C×H×W float32 in X.
type Dataset struct {
	X     []float32 // N*C*H*W pixels, already normalised
	Y     []int     // class labels 0..Classes-1
	Masks []float32 // N*H*W foreground masks for segmentation (not used by "cnn")
	N     int
	C     int
	H     int
	W     int
	// Groups, when set, holds coarse de-identified attributes by field
	// (sex, age band, manufacturer, model), each slice index-aligned with
	// the examples; "" is unknown. Training ignores it; validation reports
	// a model's performance by it.
	Groups map[string][]string
}

// Subset returns the examples at the given indices, copied, with their
// labels, masks and subgroups.
func (d Dataset) Subset(idx []int) Dataset {
	px := d.C * d.H * d.W
	out := Dataset{N: len(idx), C: d.C, H: d.H, W: d.W, X: make([]float32, len(idx)*px)}
	if d.Y != nil {
		out.Y = make([]int, len(idx))
	}
	hw := d.H * d.W
	if len(d.Masks) == d.N*hw && d.Masks != nil {
		out.Masks = make([]float32, len(idx)*hw)
	}
	if d.Groups != nil {
		out.Groups = make(map[string][]string, len(d.Groups))
		for f := range d.Groups {
			out.Groups[f] = make([]string, len(idx))
		}
	}
	for j, i := range idx {
		copy(out.X[j*px:(j+1)*px], d.X[i*px:(i+1)*px])
		if d.Y != nil {
			out.Y[j] = d.Y[i]
		}
		if out.Masks != nil {
			copy(out.Masks[j*hw:(j+1)*hw], d.Masks[i*hw:(i+1)*hw])
		}
		for f, v := range d.Groups {
			out.Groups[f][j] = v[i]
		}
	}
	return out
}

// TrainProgress is reported to TrainConfig.Progress during training.
type TrainProgress struct {
	Epoch, Epochs int // 1-based epoch in progress; Epochs is 0 when training by steps
	Step, Steps   int // steps done and planned
	Samples       int // examples seen so far
	Loss          float64
	Elapsed       time.Duration
}

// PerExampleHook receives one gradient per example, for DP-SGD.
//
// grads[i] is the gradient of example i's (class-weighted) cross-entropy with
// respect to the flat weights, in layout order, not divided by the batch
// size. The hook must write into out (zeroed, length Layout().Total) the sum
// of the clipped per-example gradients plus its noise; it may modify grads.
// With Poisson sampling (TrainConfig.SampleRate) grads may be empty: the
// step then releases noise only. The trainer then divides out by the batch
// length, or with Poisson sampling by the expected batch length
// SampleRate·N, and adds the FedProx and weight-decay terms, which do not
// depend on the data. The hook owns its random source, so determinism of
// noisy training is the hook's to keep.
type PerExampleHook interface {
	ClipAndNoise(grads [][]float32, out []float32)
}

// TrainConfig is one round of local training.
type TrainConfig struct {
	Epochs       int     // passes over the data; used when Steps is 0 (0 means 1)
	Steps        int     // if > 0, exactly this many mini-batches, overriding Epochs
	BatchSize    int     // 0 means 64
	Optimizer    string  // "adam" (default) or "sgd"
	LR           float64 // 0 means 1e-3 for Adam, 0.01 for SGD
	Momentum     float64 // SGD momentum (PyTorch convention: v = m·v + g)
	WeightDecay  float64 // L2 coefficient added to the gradient
	ProxMu       float64 // FedProx: adds mu/2·‖w−w0‖², w0 = weights when Train starts
	Augment      bool    // random flips, small rotations and shifts, intensity jitter
	ClassWeights []float32
	Seed         int64 // drives shuffling and augmentation
	// WeightAverage, if in (0, 1), keeps an exponential moving average of
	// the weights after every step (avg = d·avg + (1−d)·w, from the starting
	// weights): EpochEnd sees the averaged weights and Train leaves them in
	// the model. Averaging smooths the noise of the last steps, which on a
	// small data set is worth several points of AUC. 0 turns it off.
	WeightAverage float64

	// LRSchedule, if set, multiplies LR during epoch e (0-based).
	LRSchedule func(epoch int) float64
	// LRStepSchedule, if set, multiplies LR at step s (0-based) instead of
	// LRSchedule: a budget counted in steps has no epochs to decay at.
	LRStepSchedule func(step int) float64
	// Check, if set, is called every CheckEvery steps and after the last
	// step with the number of steps done and the weights EpochEnd would
	// see, so that a step budget can keep its best checkpoint more often
	// than once an epoch; a non-nil error stops training.
	Check      func(step int) error
	CheckEvery int
	// EpochEnd, if set, is called after each completed epoch (1-based) with
	// the trained weights in the model, e.g. to validate and keep the best;
	// a non-nil error stops training and is returned wrapped.
	EpochEnd func(epoch int) error

	Progress   func(TrainProgress) // called every ProgressEvery steps and at the end
	PerExample PerExampleHook      // nil: ordinary batch gradients; non-nil: DP-SGD path
	// SampleRate, if > 0, replaces shuffled batches of BatchSize by Poisson
	// sampling, as DP-SGD's accounting assumes: each step includes every
	// example independently with this probability, so a batch has
	// SampleRate·N examples on average and may be empty, and the summed
	// gradient is divided by SampleRate·N. An epoch is then round(1/rate)
	// steps. It needs PerExample. BatchSize is not used.
	SampleRate float64
	// Sampler draws the Poisson batches: each example is in when Float64()
	// < SampleRate. nil means a generator seeded from Seed, reproducible and
	// therefore predictable by whoever knows the seed; a deployment passes a
	// secret source (dp.NewSecureSource()).
	Sampler interface{ Float64() float64 }
	// ProgressEvery is the step interval of Progress calls; 0 means 20.
	ProgressEvery int
}

// TrainResult summarises a Train call. With Poisson sampling, Samples is
// the number of examples actually drawn and Steps the draws made (empty
// batches included): what dp.CheckSampling checks and the privacy ledger
// charges, also when training stopped early.
type TrainResult struct {
	Samples   int     // examples processed, counting repeats
	Steps     int     // optimiser steps taken
	FinalLoss float64 // mean batch loss over the last epoch (or last ⌈N/B⌉ steps)
	Seconds   float64
}

func (m *Model) checkData(ds Dataset, labels bool) error {
	s := m.spec
	if ds.N <= 0 {
		return fmt.Errorf("%w: no examples", ErrData)
	}
	if ds.C != s.Channels || ds.H != s.Height || ds.W != s.Width {
		return fmt.Errorf("%w: images are %dx%dx%d, model expects %dx%dx%d (CxHxW)", ErrData, ds.C, ds.H, ds.W, s.Channels, s.Height, s.Width)
	}
	if len(ds.X) != ds.N*ds.C*ds.H*ds.W {
		return fmt.Errorf("%w: %d pixel values for %d images of %dx%dx%d", ErrData, len(ds.X), ds.N, ds.C, ds.H, ds.W)
	}
	if !labels {
		return nil
	}
	if seg, k := m.segmentation(); seg {
		if len(ds.Masks) != ds.N*ds.H*ds.W {
			return fmt.Errorf("%w: %d mask values for %d images of %dx%d", ErrData, len(ds.Masks), ds.N, ds.H, ds.W)
		}
		for i, v := range ds.Masks {
			if k == 1 && !(v >= 0 && v <= 1) {
				return fmt.Errorf("%w: mask value %d is %v, want 0..1", ErrData, i, v)
			}
			if k > 1 && !(v >= 0 && v < float32(k) && v == float32(int(v))) {
				return fmt.Errorf("%w: mask value %d is %v, want a class index 0..%d", ErrData, i, v, k-1)
			}
		}
		return nil
	}
	if len(ds.Y) != ds.N {
		return fmt.Errorf("%w: %d labels for %d images", ErrData, len(ds.Y), ds.N)
	}
	for i, y := range ds.Y {
		if y < 0 || y >= s.Classes {
			return fmt.Errorf("%w: label %d of example %d is outside 0..%d", ErrData, y, i, s.Classes-1)
		}
	}
	return nil
}

func (c TrainConfig) normalised(classes int) (TrainConfig, error) {
	if c.BatchSize == 0 {
		c.BatchSize = 64
	}
	if c.Optimizer == "" {
		c.Optimizer = "adam"
	}
	if c.LR == 0 {
		c.LR = 1e-3
		if c.Optimizer == "sgd" {
			c.LR = 0.01
		}
	}
	if c.Epochs == 0 && c.Steps == 0 {
		c.Epochs = 1
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 20
	}
	switch {
	case c.Optimizer != "adam" && c.Optimizer != "sgd":
		return c, fmt.Errorf("optimizer %q: want \"adam\" or \"sgd\"", c.Optimizer)
	case c.BatchSize < 1:
		return c, fmt.Errorf("batch size %d: want at least 1", c.BatchSize)
	case c.Epochs < 0 || c.Steps < 0:
		return c, fmt.Errorf("epochs %d, steps %d: want non-negative", c.Epochs, c.Steps)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return c, fmt.Errorf("learning rate %v: want a positive finite number", c.LR)
	case c.Momentum < 0 || c.Momentum >= 1:
		return c, fmt.Errorf("momentum %v: want 0 <= momentum < 1", c.Momentum)
	case c.WeightAverage < 0 || c.WeightAverage >= 1:
		return c, fmt.Errorf("weight average decay %v: want 0 (off) or 0 < d < 1", c.WeightAverage)
	case c.Check != nil && c.CheckEvery < 1:
		return c, fmt.Errorf("check every %d steps: want at least 1", c.CheckEvery)
	case c.WeightDecay < 0 || c.ProxMu < 0:
		return c, fmt.Errorf("weight decay %v, prox mu %v: want non-negative", c.WeightDecay, c.ProxMu)
	case !(c.SampleRate >= 0 && c.SampleRate <= 1):
		return c, fmt.Errorf("sample rate %v: want 0 (shuffled batches) or 0 < rate <= 1", c.SampleRate)
	case c.SampleRate > 0 && c.PerExample == nil:
		return c, fmt.Errorf("sample rate %v without a per-example hook: Poisson sampling is for DP-SGD", c.SampleRate)
	case c.ClassWeights != nil && len(c.ClassWeights) != classes:
		return c, fmt.Errorf("%d class weights for %d classes", len(c.ClassWeights), classes)
	}
	for i, w := range c.ClassWeights {
		if !(w >= 0) || math.IsInf(float64(w), 0) {
			return c, fmt.Errorf("class weight %d is %v: want a finite non-negative number", i, w)
		}
	}
	return c, nil
}

// BalancedClassWeights returns weights N/(K·count_k), which make every class
// contribute equally to the loss; absent classes get weight 0.
func BalancedClassWeights(labels []int, classes int) []float32 {
	counts := make([]int, classes)
	for _, y := range labels {
		if y >= 0 && y < classes {
			counts[y]++
		}
	}
	out := make([]float32, classes)
	for k, c := range counts {
		if c > 0 {
			out[k] = float32(float64(len(labels)) / float64(classes*c))
		}
	}
	return out
}

// Train runs local training from the current weights and leaves the trained
// weights in the model. It returns ctx's error, with the weights of the last
// completed step kept, when ctx is cancelled.
func (m *Model) Train(ctx context.Context, ds Dataset, cfg TrainConfig) (TrainResult, error) {
	start := time.Now()
	if m.impl == nil {
		return TrainResult{}, fmt.Errorf("train %s model: %w", m.spec.Arch, ErrCustomCode)
	}
	if err := m.checkData(ds, true); err != nil {
		return TrainResult{}, fmt.Errorf("train: %w", err)
	}
	if m.Segments() && cfg.ClassWeights != nil {
		return TrainResult{}, fmt.Errorf("train: class weights apply to classifiers, not to segmentation models")
	}
	cfg, err := cfg.normalised(m.spec.Classes)
	if err != nil {
		return TrainResult{}, fmt.Errorf("train: %w", err)
	}
	P := len(m.w)
	bs := min(cfg.BatchSize, ds.N)
	stepsPerEpoch := (ds.N + bs - 1) / bs
	poisson := cfg.SampleRate > 0
	var sampler interface{ Float64() float64 }
	if poisson {
		bs = ds.N // the largest batch a draw can give, for the buffers below
		stepsPerEpoch = max(1, int(math.Round(1/cfg.SampleRate)))
		sampler = cfg.Sampler
		if sampler == nil {
			sampler = rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9015<<32))
		}
	}
	total := cfg.Steps
	epochs := 0
	if total == 0 {
		epochs = cfg.Epochs
		total = epochs * stepsPerEpoch
	}

	opt := newOptimizer(cfg, P)
	w0 := append([]float32(nil), m.w...)
	var avg, raw []float32 // the weight average and, around EpochEnd, the raw weights
	if cfg.WeightAverage > 0 {
		avg, raw = append([]float32(nil), m.w...), make([]float32, P)
		defer copy(m.w, avg) // also when stopped: the average is the result
	}
	grad := make([]float32, P)
	maxChunks := (bs + chunkSize - 1) / chunkSize
	workers := min(runtime.GOMAXPROCS(0), maxChunks)
	works := make([]worker, workers)
	for i := range works {
		works[i] = m.impl.newWorker()
	}
	sc, cache := m.impl.(stepCacher)
	if cache {
		defer sc.endSteps()
	}
	var chunkGrads [][]float32
	var exGrads [][]float32
	if cfg.PerExample != nil {
		n := bs
		if poisson {
			n = 0 // grown as draws need, rather than N gradients up front
		}
		exGrads = make([][]float32, n, bs)
		for i := range exGrads {
			exGrads[i] = make([]float32, P)
		}
	} else {
		chunkGrads = make([][]float32, maxChunks)
		for i := range chunkGrads {
			chunkGrads[i] = make([]float32, P)
		}
	}
	chunkLoss := make([]float64, maxChunks)
	px := ds.C * ds.H * ds.W
	hw := ds.H * ds.W

	var perm []int
	res := TrainResult{}
	var epochLoss float64
	var epochSteps int // steps with a non-empty batch, over which epochLoss is summed
	meanLoss := func() float64 {
		if epochSteps == 0 {
			return 0
		}
		return epochLoss / float64(epochSteps)
	}
	for step := 0; step < total; step++ {
		if err := ctx.Err(); err != nil {
			res.Seconds = time.Since(start).Seconds()
			return res, fmt.Errorf("train: stopped after %d of %d steps: %w", step, total, err)
		}
		epoch, pos := step/stepsPerEpoch, step%stepsPerEpoch
		if pos == 0 {
			if !poisson {
				perm = shuffle(ds.N, cfg.Seed, epoch)
			}
			epochLoss, epochSteps = 0, 0
			opt.lr = cfg.LR
			if cfg.LRSchedule != nil {
				opt.lr = cfg.LR * cfg.LRSchedule(epoch)
			}
		}
		if cfg.LRStepSchedule != nil {
			opt.lr = cfg.LR * cfg.LRStepSchedule(step)
		}
		var batch []int
		if poisson {
			batch = poissonBatch(ds.N, cfg.SampleRate, sampler)
			for len(exGrads) < len(batch) {
				exGrads = append(exGrads, make([]float32, P))
			}
		} else {
			batch = perm[pos*bs : min((pos+1)*bs, ds.N)]
		}
		nChunks := (len(batch) + chunkSize - 1) / chunkSize
		if cache {
			sc.newStep(m.w)
		}

		var next atomic.Int32
		var wg sync.WaitGroup
		for wi := 0; wi < min(workers, nChunks); wi++ {
			ws := works[wi]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ci := int(next.Add(1)) - 1
					if ci >= nChunks {
						return
					}
					lo, hi := ci*chunkSize, min((ci+1)*chunkSize, len(batch))
					var g []float32
					if chunkGrads != nil {
						g = chunkGrads[ci]
						clear(g)
					}
					var l float64
					for j := lo; j < hi; j++ {
						ex := batch[j]
						x, mask, tmp := ws.buffers()
						copy(x, ds.X[ex*px:(ex+1)*px])
						y := 0
						if mask != nil {
							copy(mask, ds.Masks[ex*hw:(ex+1)*hw])
						} else {
							y = ds.Y[ex]
						}
						if cfg.Augment {
							augment(x, mask, tmp, ds.C, ds.H, ds.W, cfg.Seed, step, j)
						}
						scale := float32(1)
						if cfg.ClassWeights != nil {
							scale = cfg.ClassWeights[y]
						}
						if sd, ok := ws.(exampleSeeder); ok {
							sd.seedExample(cfg.Seed, step, j)
						}
						if exGrads != nil {
							g = exGrads[j]
							clear(g)
						}
						l += float64(scale) * ws.gradStep(m.w, y, scale, g)
					}
					chunkLoss[ci] = l
				}
			}()
		}
		wg.Wait()

		var loss float64
		for ci := 0; ci < nChunks; ci++ {
			loss += chunkLoss[ci]
		}
		if exGrads != nil {
			clear(grad)
			cfg.PerExample.ClipAndNoise(exGrads[:len(batch)], grad)
		}
		inv := 1 / float32(len(batch))
		if poisson {
			inv = float32(1 / (cfg.SampleRate * float64(ds.N)))
		}
		wd, mu := float32(cfg.WeightDecay), float32(cfg.ProxMu)
		opt.next()
		// The rest is element-wise, so the workers split the weights.
		inParallel(P, workers, func(lo, hi int) {
			g := grad[lo:hi]
			if exGrads == nil {
				clear(g)
				for ci := 0; ci < nChunks; ci++ {
					addTo(g, chunkGrads[ci][lo:hi])
				}
			}
			for i := range g {
				v := g[i] * inv
				if wd != 0 {
					v += wd * m.w[lo+i]
				}
				if mu != 0 {
					v += mu * (m.w[lo+i] - w0[lo+i])
				}
				g[i] = v
			}
			opt.update(lo, hi, m.w, grad)
			if avg != nil {
				d := float32(cfg.WeightAverage)
				for i, v := range m.w[lo:hi] {
					avg[lo+i] = d*avg[lo+i] + (1-d)*v
				}
			}
		})

		if len(batch) > 0 {
			loss /= float64(len(batch))
			epochLoss += loss
			epochSteps++
		}
		res.Steps++
		res.Samples += len(batch)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			res.Seconds = time.Since(start).Seconds()
			return res, fmt.Errorf("train: loss is %v at step %d; lower the learning rate", loss, step+1)
		}
		if cfg.Progress != nil && ((step+1)%cfg.ProgressEvery == 0 || step+1 == total) {
			ep := 0
			if epochs > 0 {
				ep = epoch + 1
			}
			cfg.Progress(TrainProgress{Epoch: ep, Epochs: epochs, Step: step + 1, Steps: total,
				Samples: res.Samples, Loss: meanLoss(), Elapsed: time.Since(start)})
		}
		epochDone := cfg.EpochEnd != nil && (pos == stepsPerEpoch-1 || step+1 == total)
		checkDue := cfg.Check != nil && ((step+1)%cfg.CheckEvery == 0 || step+1 == total)
		if epochDone || checkDue {
			if avg != nil {
				copy(raw, m.w)
				copy(m.w, avg)
			}
			var err error
			if epochDone {
				if err = cfg.EpochEnd(epoch + 1); err != nil {
					err = fmt.Errorf("after epoch %d: %w", epoch+1, err)
				}
			}
			if err == nil && checkDue {
				if err = cfg.Check(step + 1); err != nil {
					err = fmt.Errorf("after step %d: %w", step+1, err)
				}
			}
			if avg != nil {
				copy(m.w, raw)
			}
			if err != nil {
				res.FinalLoss = meanLoss()
				res.Seconds = time.Since(start).Seconds()
				return res, fmt.Errorf("train: %w", err)
			}
		}
	}
	res.FinalLoss = meanLoss()
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// poissonBatch draws each of n examples with probability rate. It is
// dp.PoissonBatch, repeated here because learning does not depend on the
// privacy packages (the dp tests check that the two agree).
func poissonBatch(n int, rate float64, src interface{ Float64() float64 }) []int {
	var out []int
	for i := 0; i < n; i++ {
		if src.Float64() < rate {
			out = append(out, i)
		}
	}
	return out
}

// shuffle is the example order of one epoch.
func shuffle(n int, seed int64, epoch int) []int {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5401<<32|uint64(epoch)))
	return rng.Perm(n)
}

// Predict returns, for a classifier, softmax probabilities N×Classes,
// row-major; for "unet" and a one-channel graph segmenter, foreground
// probabilities N×H×W; for a k-channel graph segmenter, per-pixel softmax
// probabilities N×k×H×W.
func (m *Model) Predict(ds Dataset) ([]float32, error) {
	if m.impl == nil {
		return nil, fmt.Errorf("predict with a %s model: %w", m.spec.Arch, ErrCustomCode)
	}
	if err := m.checkData(ds, false); err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	per := m.spec.Classes
	if seg, k := m.segmentation(); seg {
		per = k * ds.H * ds.W
	}
	out := make([]float32, ds.N*per)
	px := ds.C * ds.H * ds.W
	nChunks := (ds.N + chunkSize - 1) / chunkSize
	workers := min(runtime.GOMAXPROCS(0), nChunks)
	var next atomic.Int32
	var wg sync.WaitGroup
	for wi := 0; wi < workers; wi++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := m.impl.newWorker()
			for {
				ci := int(next.Add(1)) - 1
				if ci >= nChunks {
					return
				}
				for ex := ci * chunkSize; ex < min((ci+1)*chunkSize, ds.N); ex++ {
					x, _, _ := ws.buffers()
					copy(x, ds.X[ex*px:(ex+1)*px])
					ws.infer(m.w, out[ex*per:(ex+1)*per])
				}
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// network is one architecture's shape arithmetic; it makes per-goroutine
// workers.
type network interface {
	newWorker() worker
}

// inParallel runs f on up to workers contiguous parts of [0, n), at once
// when n is large enough to repay the goroutines.
func inParallel(n, workers int, f func(lo, hi int)) {
	if workers < 2 || n < 1<<16 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			f(lo, hi)
		}(lo, min(lo+per, n))
	}
	wg.Wait()
}

// stepCacher is implemented by networks that keep what depends only on
// the weights (a graph's swapped convolution kernels) for all the workers
// and examples of a step: Train calls newStep before each step and
// endSteps when it returns.
type stepCacher interface {
	newStep(w []float32)
	endSteps()
}

// exampleSeeder is implemented by workers whose training pass draws random
// numbers (dropout): Train seeds it for each example from (Seed, step,
// position in the batch), like augmentation, so that training stays
// deterministic whichever goroutine runs the example.
type exampleSeeder interface {
	seedExample(seed int64, step, j int)
}

// worker holds one goroutine's scratch space for one example at a time.
type worker interface {
	// buffers returns the input (C×H×W), the target mask (H×W, nil for
	// classifiers) and augmentation scratch (C×H×W + H×W).
	buffers() (x, mask, tmp []float32)
	// gradStep runs forward and backward on the example in the buffers,
	// adds scale·∂loss/∂w to grad and returns the unscaled loss.
	gradStep(w []float32, y int, scale float32, grad []float32) float64
	// infer runs forward only and writes the prediction to out.
	infer(w []float32, out []float32)
}

func (ws *cnnWork) buffers() (x, mask, tmp []float32) { return ws.x, nil, ws.augTmp }

func (ws *cnnWork) gradStep(w []float32, y int, scale float32, grad []float32) float64 {
	ws.net.forward(w, ws)
	return ws.net.backward(w, ws, y, scale, grad)
}

func (ws *cnnWork) infer(w []float32, out []float32) {
	ws.net.forward(w, ws)
	copy(out, ws.prob)
}

func (n *cnnNet) newWorker() worker { return n.newWork() }
