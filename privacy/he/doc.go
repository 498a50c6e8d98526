// Package he is the coordinator's side of Concord's secure aggregation with multiparty
// threshold RLWE encryption (lattigo v5). It owns the parameter sets, the validation of
// every encrypted object that arrives from a site, the running encrypted sum of a round,
// and the combination of decryption shares into the plaintext sum. It holds and exposes
// only public material: no secret-key type is reachable from this package, so the
// coordinator that imports it cannot decrypt anything by itself. The site's side (secret
// key, Shamir shares, encryption, decryption shares, key storage) is package party.
//
// # Protocol
//
// Per job: every site draws an RLWE secret key s_i, splits it t-of-N with Shamir's scheme
// and sends each share, sealed end to end to its receiver (X25519 + HKDF + AES-GCM), through
// the coordinator. The job's public seed (CRSSeed) fixes the common reference polynomials.
//
// Per round and per ciphertext index k, every site derives the same uniform polynomial
// a_k from the seed and uploads only c0 = -a_k*s_i + m_i + e_i: a ciphertext whose second
// half is public and never travels, which halves the bytes. The coordinator adds the c0
// of every contributor U: the sum decrypts under sum_{i in U} s_i. Any t parties (the
// committee) each send h_j = lambda_j * sum_{i in U} share_i(j) * a_k + e_smudge, where
// lambda_j is j's Lagrange coefficient over the committee; the coordinator adds them to the
// sum and reads sum m_i. Because U is explicit, a contributor that dies after uploading
// is still decrypted through its Shamir shares, and parties refuse a second decryption of
// one round with another contributor set (which would isolate a site by subtraction).
//
// The same machinery sums other vectors than updates. A secure job's validation sites
// hold key shares (they deal and receive Shamir shares and may decrypt) but never
// train; after scoring the final model each encrypts its per-subgroup confusion counts,
// with weight 1, for a round reserved for this (1<<30 | r, see coordinator/pooled.go),
// and the coordinator decrypts only their sum. Job.Threshold counts every key holder's
// point in N, but a sum of fewer than Threshold contributors is never decrypted, by the
// coordinator (DecryptionRequest) or by a party (DecryptionShares): a job's default
// threshold is therefore the number of key holders that train, not N.
//
// This is the shared-a RLWE aggregation of Stevens et al. (USENIX Security 2022) with
// the threshold access structure of Mouchet, Bertrand and Hubaux (ePrint 2022/780), whose
// Thresholdizer and Combiner lattigo implements and package party uses.
//
// Values are fixed point (scale 2^LogScale) in the polynomial's coefficients, one value
// per coefficient, packed on the wire at the modulus' bit width: 7.5 bytes per value for
// the default set. A site encrypts weight*update and, in one more coefficient, the weight;
// the caller divides after decryption (Result.Mean).
//
// # Caller duties (coordinator)
//
//  1. Relay key-setup bytes between sites unchanged; they are sealed to the receiver.
//  2. Give each Add the authenticated sender's point; Add rejects a ciphertext made for
//     another job, round, parameter set or site. Persist either the raw ciphertexts or
//     Aggregate.MarshalBinary before acknowledging an upload.
//  3. Close the round with DecryptionRequest; it refuses while a site's upload is partial
//     and when fewer than the threshold can decrypt (the round is then aborted: nothing
//     was decrypted and no privacy budget should be charged).
//  4. Send the request (MarshalBinary) to the committee, feed the shares that come back to
//     a Decryption (persist the share bytes, or Decryption.MarshalBinary, to survive a
//     restart: Aggregate.UnmarshalDecryption resumes), and call Result once.
//
// # Precision and noise
//
// A decrypted sum is exact up to noise: each contributor's fresh encryption error
// (sigma 3.2, cut at 6 sigma), each committee member's flooding noise (SmudgingSigma,
// cut at 6 sigma) and 1/2 per rounding, all divided by the scale. ParamSet.ErrorBound
// adds these worst cases up; the largest error observed over a million values is
// about half of it for t = 2 and a sixth for t = 34. For the default
// set at 10 sites, t = 7: ErrorBound is 4e-5 on each sum, so a weighted mean with sample
// counts as weights (total weight W) is within about 4e-5/W. MaxAbsInput(10) is 52428
// and MaxAbsInput(50) is 10485 for |weight*value|.
//
// Unlike decryption after public-key encryption, nothing in the decrypted noise depends
// on a secret key here (the a_k are public and uniform, the errors fresh), so flooding
// only has to make each share a fresh RLWE sample; sigma 2^20 does that with a wide margin
// while keeping about 20 bits of the 40-bit scale free of noise.
//
// Security model: honest-but-curious parties, as for lattigo's protocols. The fixed-point
// noise is deterministic given the site's key material and inputs, so an interrupted and
// an uninterrupted run that encrypt the same updates decrypt to bit-identical results.
package he
