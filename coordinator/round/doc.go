// Package round is the coordinator's job and round logic as a pure state
// machine, in the style of etcd's raft: events in, actions out, no disk,
// network, clock or goroutines. The caller owns all of those.
//
// The caller's duties, in order, for every event:
//
//  1. Check an incoming upload with Machine.Accept before acknowledging any of
//     its chunks; it rejects late, duplicate and non-participant uploads.
//  2. Call Machine.Step with the event. Time enters only as Event.Now.
//  3. Persist Machine.State (it is plain JSON-able data) before executing the
//     returned actions, so that a crash after an action never loses the
//     transition that caused it.
//  4. Execute the actions: send tasks, aggregate, combine keys, publish.
//     Long work (aggregation, decryption) reports back with another event.
//
// After a restart, rebuild the machine with Restore from the persisted state;
// connections are not persisted, so every site must reconnect, and a
// participant that reconnects before it has delivered what the phase needs
// is sent its task again (an agent that already computed its update resumes
// the upload instead of retraining).
package round
