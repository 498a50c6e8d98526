// Package aggregation owns the arithmetic that turns site updates into a new
// global model: sample-weighted FedAvg (also used for FedProx, whose proximal
// term lives in local training), the adaptive server optimisers FedAdam,
// FedYogi and FedAdagrad of Reddi et al. 2021 ("Adaptive Federated
// Optimization", ICLR 2021), and the robust coordinate-wise Median and
// TrimmedMean for plaintext mode.
//
// Everything here is a deterministic function of flat float32 vectors: no
// network, no clock, no randomness, no goroutines. The same inputs in the same
// order give bit-identical outputs on every machine.
//
// The caller's duties, in order:
//
//  1. Build a Config from the job file, call Validate (New does too) and
//     New to get the ServerOptimizer for the job. Persist its MarshalState
//     with the global model after every round and UnmarshalState it when the
//     coordinator restarts, or the adaptive optimisers lose their moments.
//  2. For each round, if Config.Robust is false, stream every site's update
//     into a WeightedSum sized to the model (AddChunk per received chunk,
//     AddWeight once per site when its whole update has arrived). Persist
//     WeightedSum.MarshalBinary if the round must survive a restart. When the
//     round closes, WeightedSum.Mean is the sample-weighted client mean.
//     If Config.Robust is true, the robust rules need every update at once:
//     collect them (plaintext mode only) and call Config.RobustMean.
//  3. Call ServerOptimizer.Step(global, clientMean) to get the next global
//     model. Step never modifies its arguments.
//
// Inputs with NaN or Inf, mismatched lengths or non-positive weights are
// rejected with an error before any state changes; nothing here panics on
// bad input.
package aggregation
