package siteagent

import (
	"errors"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Prediction drift. Besides the images, a site watches what the model
// says about them: the distribution of the model's score (the positive
// class's probability for a binary classifier, the top class's otherwise)
// on the arriving images against its distribution on the baseline data.
// The model is the one the site last received for a job's final round —
// the aggregate it validated, or the global model it trained its last
// round from — kept in the agent's state with the baseline. Segmentation
// models have no single score and are not compared.

// FeaturePrediction is the drift feature of the model's scores.
const FeaturePrediction = "prediction"

// predictBatch bounds the images run through the model at once while a
// check reads the arriving files.
const predictBatch = 256

// scoreEdges are the ten equal-width bins of a probability.
var scoreEdges = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// driftModel is the model a prediction baseline was computed with.
type driftModel struct {
	Spec    learning.Spec `json:"spec"`
	Weights []byte        `json:"weights"` // float32 little-endian
}

// scorer runs a kept model over standardised images.
type scorer struct {
	m       *learning.Model
	classes int
}

func newScorer(dm *driftModel) (*scorer, error) {
	if dm == nil || dm.Spec.Classes < 2 {
		return nil, errors.New("no classifier kept for prediction drift")
	}
	m, err := learning.New(dm.Spec, 0)
	if err != nil {
		return nil, err
	}
	if m.Segments() {
		return nil, errors.New("no classifier kept for prediction drift")
	}
	if err := m.SetWeights(learning.DecodeWeightsInto(nil, dm.Weights)); err != nil {
		return nil, err
	}
	return &scorer{m: m, classes: dm.Spec.Classes}, nil
}

// add scores ds and adds each example's score to h.
func (s *scorer) add(ds learning.Dataset, h *evaluation.Histogram) error {
	if ds.N == 0 {
		return nil
	}
	out, err := s.m.Predict(ds)
	if err != nil {
		return err
	}
	for i := range ds.N {
		p := out[i*s.classes : (i+1)*s.classes]
		score := float64(p[1])
		if s.classes > 2 {
			score = 0
			for _, v := range p {
				score = max(score, float64(v))
			}
		}
		h.Add(score)
	}
	return nil
}

// predictionBaseline is the kept model and its score histogram on the
// baseline data (at most maxDriftFiles examples, evenly spread), or nil
// when the model cannot score (a segmentation model, a model that does not
// fit the data).
func predictionBaseline(spec *pb.JobSpec, weights []float32, ds learning.Dataset) (*driftModel, *evaluation.Histogram) {
	dm := &driftModel{Spec: jobspec.ModelSpec(spec), Weights: learning.EncodeWeights(weights)}
	s, err := newScorer(dm)
	if err != nil {
		return nil, nil
	}
	h := evaluation.NewHistogram(scoreEdges)
	take := min(ds.N, maxDriftFiles)
	idx := make([]int, 0, predictBatch)
	for k := 0; k < take; k++ {
		idx = append(idx, k*ds.N/take)
		if len(idx) == predictBatch || k == take-1 {
			if err := s.add(ds.Subset(idx), &h); err != nil {
				return nil, nil
			}
			idx = idx[:0]
		}
	}
	return dm, &h
}
