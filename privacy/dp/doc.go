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
// # Site level
//
// A job with privacy.level site protects each hospital's whole update.
// Each site clips its round update Δ_i to L2 norm C (the update clip) and
// adds its share of the noise, N(0, σ_site²) per coordinate with
// σ_site = z·C/sqrt(m) (SiteNoiseStd), where m is the job's min_sites;
// under secure aggregation it then encrypts with weight 1. The
// coordinator decrypts only the sum of the k contributions, whose noise
// has variance k/m·z²C² >= z²C², and takes the unweighted mean (the
// sum's sensitivity is C only if each site counts once; a sample-weighted
// mean would scale it by the weight, so the coordinator refuses a
// decrypted total weight other than k, and the spec refuses median and
// trimmed-mean, which pick among single updates each carrying only
// 1/sqrt(m) of the noise). The mean, and anything a server optimiser
// (fedadam, fedyogi, fedadagrad) computes from it, is post-processing.
//
// Each round is therefore the Gaussian mechanism with sensitivity C,
// noise multiplier z and every site in (q = 1): SiteRound(z), RDP
// α/(2z²), composed over the rounds by the same accountant; with
// privacy.epsilon and no noise multiplier, PlanSite plans z for the job's
// rounds, and every site and the coordinator compute the same z from the
// spec. Each site charges its site-level ledger (a Budget of Level Site,
// agent.yaml privacy.site_budget), refuses a task whose remaining rounds
// would exceed it, and signs a Receipt of level site naming C and m.
//
// Dropouts. A round closes only with at least m updates (the coordinator's
// round machine aborts it otherwise, and the coordinator refuses to
// aggregate fewer), so the decrypted sum always carries at least the
// charged noise. A round that aborts because sites dropped out leaves
// the sites that had uploaded charged for a release that was never
// decrypted, which only overstates their epsilon (the ciphertext alone
// reveals nothing); with more than m contributors the noise only grows
// (k/m·z²C²), and
// the guarantee, computed for z, holds a fortiori. The contributors of
// each round are in the round summary and the compliance report. The
// guarantee is against everyone who sees only the aggregate. Without
// secure aggregation (secure_aggregation none) the coordinator sees each
// update with its own share of the noise, z/sqrt(m) times C: towards the
// coordinator the protection is that of noise multiplier z/sqrt(m), and
// reports must say so.
//
// Adaptive clipping (Andrew et al. 2021, arXiv 1905.03871) replaces the
// fixed C by a clip that tracks the γ-quantile of update norms. Each site
// also releases its centred bit b_i − 1/2, b_i = 1 if ||Δ_i|| <= C
// (CountBit), with noise share N(0, σ_b²/m), as one extra value appended
// to its (encrypted) update, so the coordinator sees only the noisy sum.
// The update and the count share the round's budget: the update is noised
// with z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2) (AdaptiveSplit), the count's
// sensitivity is 1/2, and the two Gaussian releases compose to RDP
// α/(2z_Δ²) + α/(2(2σ_b)²) = α/(2z²): exactly SiteRound(z), which is what
// the ledger charges. The coordinator computes b̄ = (noisy centred sum +
// k/2)/k and the next clip C·exp(−η(b̄ − γ)) (NextClip), keeps it in the
// job record and sends it with the next TRAIN task; the site refuses a
// clip that is not positive and finite. The clip is a function of DP
// releases only, so sending it costs nothing more.
//
// The noise source is NewSecureSource: ChaCha8 from math/rand/v2, seeded
// with 32 bytes from crypto/rand, one per update. The guarantee assumes
// the noise is unpredictable to everyone but the site; a seeded source
// is for tests only.
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
