package learning

import "fmt"

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
