// Package extrainer owns the site agent's side of the external-trainer
// protocol (service concord.v1.Trainer in proto/concord/v1/trainer.proto):
// it dials a training process that runs next to the agent, typically on a
// GPU node (deploy/trainer/trainer.py is the PyTorch reference), hands it
// the global weights, their layout manifest and the round's settings, and
// returns the updated weights, the sample count and the trainer's metrics.
//
// The trainer only trains. The caller keeps every duty that protects the
// federation, in this order:
//  1. Check Info once at startup: the trainer must build the manifest's
//     version and arch.
//  2. Call Train with the round's global weights; treat the returned weights
//     as untrusted input of the right length and finite values (Train checks
//     both) and nothing more.
//  3. Clip the update, encrypt and upload it yourself; the trainer never
//     sees keys, budgets or the coordinator. For record-level DP, pass
//     Settings.DP: the trainer runs DP-SGD (it alone sees the per-example
//     gradients), and you check Result.Drawn against the rate
//     (dp.CheckSampling) and charge Result.Steps to the privacy ledger.
//  4. Cancel ctx to stop a round; the trainer is told through the stream.
//
// Connections are insecure only over a unix socket or to a loopback
// address; anything else needs TLS (Config.TLS), because the weights and the
// dataset paths are site data.
package extrainer
