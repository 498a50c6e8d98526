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
// Data. The agent is the only reader of patient data: it runs the job's
// pipeline and hands the trainer only standardised pixels and labels, as
// shards (Shards, SyncShards; format in shards.go and
// deploy/trainer/shards.py). Design choices:
//   - Content addressing: a shard's id is the SHA-256 of its bytes, so the
//     pipeline hash and the data manifest need not be tracked separately;
//     any change in either changes the bytes and so the ids, and unchanged
//     shards are never re-sent (DataHave says which are missing).
//   - Bounds: ShardExamples per shard, MaxShardBytes per shard (checked on
//     both sides), MaxShards per dataset, and a byte-bounded LRU cache on
//     the trainer, which verifies each shard's hash before it is visible.
//   - Shards are encoded twice (to hash, then to send) rather than held, so
//     the agent's memory stays one copy of its pipeline output.
//   - The trainer memory-maps shards and indexes examples globally, so
//     shuffling and DP-SGD's Poisson sampling range over the whole dataset.
//
// A custom model's module travels in TrainStart (Settings.Code and
// CodeSHA256) for manifests of arch "custom" only; the client checks that
// pairing and the size bound, and leaves the approval to its caller (the
// site agent), which sends only approved code.
//
// Settings.Dataset (an .npz on the trainer node) remains for benchmarks and
// protocol tests only.
//
// Connections are insecure only over a unix socket or to a loopback
// address; anything else needs TLS (Config.TLS), because the weights and the
// site's data are site data.
package extrainer
