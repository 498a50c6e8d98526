package evaluation

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// SegmentationReport holds overlap metrics over a set of images. Dice and
// IoU are the means of the per-image values, with percentile-bootstrap
// intervals over images (images, not pixels, are the independent units).
type SegmentationReport struct {
	PerImageDice []float64 `json:"per_image_dice"`
	PerImageIoU  []float64 `json:"per_image_iou"`
	Dice         Estimate  `json:"dice"`
	IoU          Estimate  `json:"iou"`
}

// Overlap returns the Dice coefficient and the IoU (Jaccard index) of one
// image. A pixel is predicted foreground when pred >= threshold and is
// truly foreground when truth >= 0.5. When both masks are empty the
// prediction is perfect and both values are 1.
func Overlap(pred, truth []float32, threshold float32) (dice, iou float64, err error) {
	if len(pred) != len(truth) {
		return 0, 0, fmt.Errorf("overlap: prediction has %d pixels, truth has %d", len(pred), len(truth))
	}
	if len(pred) == 0 {
		return 0, 0, errors.New("overlap: empty mask")
	}
	var tp, fp, fn int
	for i, p := range pred {
		if math.IsNaN(float64(p)) {
			return 0, 0, fmt.Errorf("overlap: prediction pixel %d is NaN", i)
		}
		pp, tt := p >= threshold, truth[i] >= 0.5
		switch {
		case pp && tt:
			tp++
		case pp:
			fp++
		case tt:
			fn++
		}
	}
	if tp+fp+fn == 0 {
		return 1, 1, nil
	}
	return float64(2*tp) / float64(2*tp+fp+fn), float64(tp) / float64(tp+fp+fn), nil
}

// Dice evaluates a set of predicted masks against ground truth, image by
// image (see Overlap for the pixel rule), and reports mean Dice and IoU
// with 95% bootstrap intervals.
func Dice(preds, truths [][]float32, threshold float32) (SegmentationReport, error) {
	if len(preds) != len(truths) {
		return SegmentationReport{}, fmt.Errorf("dice: %d predictions but %d ground-truth masks", len(preds), len(truths))
	}
	if len(preds) == 0 {
		return SegmentationReport{}, errors.New("dice: no images")
	}
	rep := SegmentationReport{PerImageDice: make([]float64, len(preds)), PerImageIoU: make([]float64, len(preds))}
	for i := range preds {
		d, j, err := Overlap(preds[i], truths[i], threshold)
		if err != nil {
			return SegmentationReport{}, fmt.Errorf("dice: image %d: %w", i, err)
		}
		rep.PerImageDice[i], rep.PerImageIoU[i] = d, j
	}
	rep.Dice = bootstrapMean(rep.PerImageDice, 3)
	rep.IoU = bootstrapMean(rep.PerImageIoU, 4)
	return rep, nil
}

// bootstrapMean returns the mean of v with a percentile-bootstrap interval.
func bootstrapMean(v []float64, stream uint64) Estimate {
	var sum float64
	for _, x := range v {
		sum += x
	}
	est := Estimate{Value: sum / float64(len(v))}
	means := make([]float64, BootstrapReplicates)
	rng := rand.New(rand.NewPCG(bootstrapSeed, stream))
	for b := range means {
		var s float64
		for range v {
			s += v[rng.IntN(len(v))]
		}
		means[b] = s / float64(len(v))
	}
	est.Lower, est.Upper = percentileCI(means)
	return est
}
