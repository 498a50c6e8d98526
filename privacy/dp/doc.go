// Package dp owns Concord's differential privacy: clipping, Gaussian noise
// from a random source the caller passes in, Poisson sampling and its rate
// check, the DP-SGD per-example hook, the Rényi DP accountant for the
// Poisson-subsampled Gaussian mechanism, and a site's privacy budget
// ledger. It does no I/O and imports no network code; the site agent
// persists the ledger and the audit log records what it says.
//
// # Accountant
//
// RDP(m, orders) is the Rényi DP of m = Gaussian{NoiseMultiplier σ,
// SampleRate q, Steps T}: T times the one-step value, exact for integer
// orders (binomial expansion) and, for fractional orders, the series of
// Mironov, Talwar and Zhang (2019) with every term taken positive, which
// bounds it from above. Both are Google dp_accounting's formulas, computed
// in log space, and reproduce its published values (rtol 1e-4). Compose
// adds curves per order: running mechanisms one after the other costs
// the sum. Epsilon converts a curve to (ε, δ) with the bound dp_accounting
// and Opacus use today, ε = min over α of RDP(α) + log(1−1/α) − (log δ +
// log α)/(α−1); the older bound RDP(α) − log δ/(α−1), which published
// tables such as TF Privacy's MNIST tutorial used, gives a larger ε for the
// same run. Spent(σ, q, T, δ) is that ε over DefaultOrders() (1.1..10.9 by
// 0.1, 11..63, 128, 256, 512); Plan(ε, δ, q, T) is the smallest σ, to a
// relative PlanPrecision and rounded up, with Spent <= ε. Invalid inputs
// (NaN, negative, q outside [0, 1], δ outside (0, 1)) return errors
// wrapping ErrInvalid. The guarantees hold under add/remove-one
// neighbouring and only if the batches really are Poisson samples at rate
// q and the noise really is unpredictable.
//
// # Mechanisms
//
// ClipL2 bounds one vector's L2 norm; AddNoise adds N(0, std²) draws from
// a Source; PoissonBatch draws each example independently with probability
// q; CheckSampling fails when the number of examples actually drawn over T
// steps is implausible for rate q (more than 6 standard deviations + 1
// from q·n·T): a trainer that declares one rate and samples another would
// make every epsilon wrong. SGD is the DP-SGD hook for
// learning.TrainConfig.PerExample: clip each example's gradient to Clip,
// sum, add N(0, (σ·Clip)²) per coordinate; with TrainConfig.SampleRate the
// trainer draws Poisson batches and divides by the expected batch size q·n.
// Tests seed a math/rand/v2 generator; deployments use NewSecureSource for
// both the noise and the sampling.
//
// # Levels
//
// A Record-level epsilon (DP-SGD at a site) protects each patient record of
// that site. A Site-level epsilon (noise on the aggregate, over sites)
// protects a hospital's whole contribution; with ten hospitals it protects
// little. The two are different promises and are never added: a Ledger
// holds one level's budget and refuses entries of the other, and every
// report names the level of each epsilon.
//
// # Receipts
//
// SignReceipt signs a site's Receipt for one release (job, round, the
// mechanism run, the epsilon its ledger has spent with it, its budget, the
// accountant, the upload's SHA-256) with the site's TLS key, ECDSA P-256 or
// Ed25519, in a versioned JSON envelope. VerifyReceipt checks it against
// the site certificate's key; Countersign adds the coordinator's Ed25519
// signature over the receipt and the site's signature, and
// VerifyCountersigned checks both. An envelope must be in canonical form
// (what this package writes), so that no byte of it can change and still
// verify.
//
// # Caller's duties, in order
//
//  1. Before training, build the planned Gaussian from the job (σ, q, the
//     steps of this round) and call Ledger.Check. On ErrBudgetExceeded, do
//     not train; report the error, which says what is spent, what the round
//     costs and the budget.
//  2. Train with an SGD hook whose Source and the trainer's Sampler are
//     secret (NewSecureSource), with TrainConfig.SampleRate = q.
//  3. After training, check the TrainResult with CheckSampling(res.Samples,
//     n, res.Steps, q); do not release an update that fails it.
//  4. Charge the ledger once the release has happened (the upload is
//     prepared and accepted), with what actually ran: res.Steps, q, σ, and
//     the SHA-256 of the uploaded bytes; then persist the ledger
//     (MarshalJSON) before acknowledging the round. A round that aborts
//     before its upload leaves the site charges nothing; one whose upload
//     left the site is charged even if the round later fails, and even if
//     the total then exceeds the budget, because the release happened.
//     Charging one upload twice returns ErrAlreadyCharged, so a retry after
//     a crash is safe.
package dp
