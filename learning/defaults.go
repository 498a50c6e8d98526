package learning

// Recipe is the part of a training run that Defaults derives from the data
// when the user gives no flags.
type Recipe struct {
	Steps     int  // optimiser steps: the training budget
	BatchSize int  // examples per step
	Width     int  // Spec.BaseWidth of the cnn
	Augment   bool // TrainConfig.Augment
}

// The thresholds of Defaults, each with the reason it is where it is.
const (
	// smallSet: below this many training images a set is "small" and
	// trains at batch 32 (more steps per pass). The two data sets we can
	// measure on sit either side of it: BreastMNIST (546) and
	// PneumoniaMNIST (4,708). On the validation split BreastMNIST preferred
	// batch 32 at either width; PneumoniaMNIST at width 24 scored the same
	// at batch 32 and 64, so it keeps 64 (learning/RESULTS.md).
	smallSet = 1000
	// width: the cnn's base width for every set. On the validation split
	// width 24 beat 16 on both sets (BreastMNIST 0.930 against 0.921,
	// PneumoniaMNIST 0.9970 against 0.9966).
	width = 24
	// minSteps: a small set seen for 15 epochs gets only a few hundred
	// steps, far from where its validation AUC peaks (BreastMNIST's best
	// validation AUC came at step 1,422 of 1,800 at batch 32); 1,800 steps
	// leaves headroom above that.
	minSteps = 1800
	// minEpochs: a large set needs at least this many passes (the
	// MedMNIST v2 recipe's budget at which PneumoniaMNIST's validation AUC
	// has levelled off).
	minEpochs = 15
	// checks: validations per run. Often enough to catch the peak of a
	// small set (every 18 steps = one BreastMNIST epoch at 1,800 steps),
	// few enough that validating stays a small share of the time.
	checks = 100
)

// Defaults returns the training recipe for a data set of n training images,
// used when the user sets neither a budget nor the
// width, batch or augmentation.
//
// The rule: width 24; a small set (fewer than smallSet images) trains at
// batch 32 (more steps per pass), a larger set at batch 64.
// Augmentation is off for both: on the validation split it lowered AUC on
// BreastMNIST (0.894 against 0.930) and did not raise it on PneumoniaMNIST
// (0.994 against 0.997), one seed each (learning/RESULTS.md). Either way the
// budget is the larger of minSteps and minEpochs passes, and the best of
// checks validations is kept. Channels are not part of the rule: every set
// we can validate on is grey, so a colour set gets the recipe of a grey one
// of its size rather than an unmeasured guess.
func Defaults(n int) Recipe {
	r := Recipe{BatchSize: 64, Width: width}
	if n < smallSet {
		r.BatchSize = 32
	}
	perEpoch := (max(n, 1) + r.BatchSize - 1) / r.BatchSize
	r.Steps = max(minSteps, minEpochs*perEpoch)
	return r
}

// CheckInterval is the steps between validations of a run of the given
// budget: checks of them in all.
func CheckInterval(steps int) int { return max(1, steps/checks) }

// StepDecay is the MedMNIST v2 schedule on a step budget: the learning rate
// ×0.1 from half the steps and ×0.01 from three quarters.
func StepDecay(total int) func(step int) float64 {
	return func(s int) float64 {
		switch {
		case s >= total*3/4:
			return 0.01
		case s >= total/2:
			return 0.1
		}
		return 1
	}
}
