package learning

import (
	"fmt"

	"github.com/concord-fl/concord/internal/bytesize"
)

// Cost is what training one model asks of a site's machine, computed from
// the spec alone (nothing is allocated): the coordinator's operator and each
// site compare it with their limits before anything runs.
type Cost struct {
	// Params is the number of trainable float32 values (the layout's total).
	Params int64 `json:"params"`
	// Batch is the batch size ActivationBytes was computed for.
	Batch int `json:"batch"`
	// ActivationBytes is the memory that training at Batch holds for
	// activations and their gradients (weights, gradients and optimiser
	// state are 4·Params bytes each on top of it).
	ActivationBytes int64 `json:"activation_bytes"`
	// FLOPsPerExample counts the floating-point operations of one forward
	// pass of one example (a multiply-add is two); a training step costs
	// about three times as much.
	FLOPsPerExample int64 `json:"flops_per_example"`
}

// costOf holds each architecture's cost function, registered by the file
// that defines the architecture; it receives the normalised spec.
var costOf = map[string]func(s Spec, batch int) Cost{}

// Cost returns what training this model at batch size batch costs.
func (s Spec) Cost(batch int) (Cost, error) {
	n, err := s.normalised()
	if err != nil {
		return Cost{}, err
	}
	if batch < 1 {
		return Cost{}, fmt.Errorf("cost of model %s: batch size %d must be at least 1", n.Arch, batch)
	}
	f, ok := costOf[n.Arch]
	if !ok {
		return Cost{}, fmt.Errorf("cost of model %s: no cost model for this architecture", n.Arch)
	}
	return f(n, batch), nil
}

// stateCopies is how many float32 copies of the weights training holds
// beside the activations: the weights, their gradient, the optimiser's two
// moments (Adam; SGD with momentum keeps one) and the global model the
// update is taken against.
const stateCopies = 5

// TrainingBytes is the memory training at Batch needs: activations and
// their gradients, and stateCopies copies of the weights.
func (c Cost) TrainingBytes() int64 { return c.ActivationBytes + stateCopies*4*c.Params }

// Limits bound what a model may ask of a machine; a zero field is no limit.
type Limits struct {
	MaxParams int64
	// MaxTrainingBytes bounds Cost.TrainingBytes at the job's batch size.
	MaxTrainingBytes int64
	// MaxFLOPsPerExample bounds the forward FLOPs of one example.
	MaxFLOPsPerExample int64
}

// Excess is one limit a model's cost exceeds.
type Excess struct {
	// Limit is "params", "training_bytes" or "flops_per_example".
	Limit       string
	Need, Allow int64
	cost        Cost
}

func (e Excess) String() string {
	switch e.Limit {
	case "params":
		return fmt.Sprintf("the model has %d parameters, over the limit of %d", e.Need, e.Allow)
	case "training_bytes":
		return fmt.Sprintf("training at batch size %d needs %s (activations %s, weights and optimiser state %s), over the limit of %s",
			e.cost.Batch, bytesize.Format(e.Need), bytesize.Format(e.cost.ActivationBytes),
			bytesize.Format(e.Need-e.cost.ActivationBytes), bytesize.Format(e.Allow))
	}
	return fmt.Sprintf("one example's forward pass takes %.3g GFLOPs, over the limit of %.3g", float64(e.Need)/1e9, float64(e.Allow)/1e9)
}

// Exceeded lists the limits c exceeds, in the order of the Limits fields.
func (l Limits) Exceeded(c Cost) []Excess {
	var out []Excess
	for _, x := range []Excess{
		{Limit: "params", Need: c.Params, Allow: l.MaxParams},
		{Limit: "training_bytes", Need: c.TrainingBytes(), Allow: l.MaxTrainingBytes},
		{Limit: "flops_per_example", Need: c.FLOPsPerExample, Allow: l.MaxFLOPsPerExample},
	} {
		if x.Allow > 0 && x.Need > x.Allow {
			x.cost = c
			out = append(out, x)
		}
	}
	return out
}
