// Package audit owns Concord's tamper-evident audit log and the reports
// built from it: an append-only RFC 6962 Merkle tree of signed records,
// signed checkpoints that the sites witness, and bundles that anyone can
// verify offline.
//
// # Threat model
//
// The log is written by the coordinator, whose operator controls its disk,
// its database and its log key. Such an operator can, alone:
//
//   - write false records, signed with the log key (signatures show which
//     key wrote a record, not that it is true);
//   - delay or refuse to write records, and withhold records not yet in a
//     published checkpoint;
//   - delete or rewrite records on disk and re-sign everything with the log
//     key; VerifyStore sees a broken store but not one rebuilt consistently.
//
// Once the sites witness every checkpoint, the operator cannot, without
// the collusion of enough witnesses to meet the quorum:
//
//   - change, delete or reorder any record covered by a cosigned checkpoint
//     (the root would change; a witness cosigns only trees that extend the
//     one it cosigned before, proved by a consistency proof);
//   - delete the last records unseen: a smaller tree is refused by every
//     witness, and Verify given any later checkpoint (a site's witness
//     state, an earlier bundle's) names the deleted range. A bundle
//     exported from a truncated log still verifies on its own with the
//     older checkpoint it carries, so an auditor asks a site for its
//     witness state and passes it as an earlier checkpoint;
//   - show two sites two different histories (each witness keeps the last
//     state it cosigned; a bundle needs the quorum's cosignatures on one
//     checkpoint, and two trees of one size are refused as a split view);
//   - pass off another consortium's log (the trust file names the keys).
//
// Records appended after the latest cosigned checkpoint are protected by
// nothing but the coordinator's own signature until the next checkpoint,
// so checkpoint often (after every round, and before every export).
//
// Witnesses do not gossip here: a split view between sites that each only
// see their own history is caught when a bundle needs the cosignatures of
// both, so the quorum should be more than half of the witnesses.
// Cosignatures carry no timestamp: they prove that a tree existed, not when.
//
// # Caller duties, in order
//
// The coordinator (the log's writer):
//
//  1. At start-up, VerifyStore(store, trust); refuse to run on an error
//     unless the operator explicitly overrides it (and record that).
//  2. Open the log; for each event, Log.Append(record, logKey): it assigns
//     the sequence number, signs, and stores the record and the tree nodes
//     it completes in one transaction. Set Record.Time; never put content,
//     patient identifiers or file paths in a record, only sizes and SHA-256.
//  3. Periodically (after every round, and before every export),
//     Log.SignCheckpoint(logKey), and send it to every witness with
//     Log.ConsistencyProof(from, new size), where from is the size that
//     witness last cosigned (the site says it: Witness.Last().Size).
//  4. Collect the cosignature lines, AddCosignatures, and Log.Publish the
//     result. Export includes only records covered by the published
//     checkpoint.
//
// A site agent (a witness): keep the Witness state bytes on disk; on each
// checkpoint, Witness.Update(checkpoint, proof); persist State() before
// returning the cosignature; on an error, return no cosignature and alert
// the site's IT: the log was rewritten, truncated or forked.
//
// # Formats
//
// Record (leaf), version 1, at most MaxLeafBytes:
//
//	byte     1 (the encoding's version)
//	uvarint  seq
//	8 bytes  time, big-endian int64 nanoseconds since 1970 UTC
//	string   kind, actor, job id, site, detail (each: uvarint length, UTF-8 bytes)
//	uvarint  round
//	uvarint  number of data fields, then per field:
//	         string name, uvarint size, 32 bytes SHA-256
//	string   signer key id ("name+hash")
//	uvarint  signature length, then the Ed25519 signature
//
// The signature covers "concord audit record v1\x00" followed by the
// encoding up to and including the key id. Decoding accepts only this
// canonical form (no trailing bytes, no overlong numbers), so a record has
// one leaf. Leaf hashes and tree: RFC 6962 with SHA-256. The bytes are
// pinned by testdata/formats-v1.golden.
//
// Checkpoint: a signed note (golang.org/x/mod/sumdb/note) with the text
// "<origin>\n<size>\n<base64 root>\n", the transparency-dev tlog checkpoint
// body. The log key signs it; each witness adds one more note signature
// line with its own Ed25519 note key.
//
// Keys: a private key file is a PEM block "CONCORD AUDIT KEY" with a
// "Name" header holding PKCS#8 Ed25519; a public key is a note verifier
// key "name+hash+base64" and its id "name+hash" (hash: the 8 hex digits
// note derives from the name and key). Records carry the signer's id.
//
// Trust file: see Trust. Bundle file: see Bundle.
//
// # Storage
//
// Store is the small interface the log needs; BoltStore keeps it in one
// bucket of a bbolt database and MemStore in memory. The store keeps every
// complete subtree's hash (about two per record), so proofs take at most
// 2·log2(size) reads and opening the log reads at most 64 hashes.
package audit
