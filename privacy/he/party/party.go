// Package party is a site's side of Concord's secure aggregation (see package he for the
// protocol). It owns everything secret: the site's RLWE secret key, the Shamir shares of
// every site's key it receives, its X25519 key for sealing those shares end to end, the
// encryption of updates, the decryption shares, and the key's storage encrypted at rest.
// The coordinator must never import this package; a test in package he enforces it.
//
// Caller duties, in order:
//
//  1. New once per job (keys rotate by starting a new job), then Seal the party and
//     store the sealed bytes before publishing ExchangePublicKey.
//  2. When every site's X25519 key is known, send ShamirSharesFor's sealed shares through
//     the coordinator; pass the ones addressed to this site to ReceiveShamirShares. Seal.
//  3. Each round: Encrypt, Seal, then upload (or, streaming: Commit, Seal, EncryptEach
//     uploading each chunk). A party refuses to encrypt a different update for a round
//     it already encrypted (that would leak the difference), so the sealed state must be
//     stored before the first chunk leaves.
//  4. On a decryption request: DecryptionShares, Seal, then send. A party refuses to
//     decrypt one round for two different contributor sets.
//
// A Party is safe for concurrent use. Errors never contain update values.
package party

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"

	"github.com/concord-fl/concord/privacy/he"
	"github.com/concord-fl/concord/privacy/he/internal/core"
)

// Errors a caller may want to tell apart.
var (
	ErrSetupIncomplete = errors.New("key setup incomplete")
	ErrOutOfRange      = errors.New("value outside the encryptable range")
	ErrReplay          = errors.New("refused: would leak by repetition")
)

// Party is one site's secret state for one job.
type Party struct {
	mu    sync.Mutex
	ps    he.ParamSet
	p     *core.Params
	job   he.Job
	tag   [8]byte
	point int

	sk        *rlwe.SecretKey
	xpriv     *ecdh.PrivateKey
	noiseSeed [32]byte

	outgoing map[int][]byte                 // sealed Shamir shares of our key, by receiver
	shares   map[int]*mhe.ShamirSecretShare // shares of every site's key, by dealer
	addKey   map[[8]byte]*rlwe.SecretKey    // additive key per decryption request digest
	enc      map[uint64][32]byte            // round -> digest of what was encrypted
	dec      map[uint64][32]byte            // round -> digest of the contributor set
}

// New draws a fresh secret key for the site at point (1..job.Sites) of job. rand is the
// source of every secret (crypto/rand.Reader in production; a seeded reader makes tests
// reproducible).
func New(ps he.ParamSet, job he.Job, point int, rand io.Reader) (*Party, error) {
	if err := job.Validate(); err != nil {
		return nil, err
	}
	if point < 1 || point > job.Sites {
		return nil, fmt.Errorf("he party: point %d outside 1..%d", point, job.Sites)
	}
	var seeds [64]byte
	if _, err := io.ReadFull(rand, seeds[:]); err != nil {
		return nil, fmt.Errorf("he party: read randomness: %w", err)
	}
	xpriv, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("he party: x25519 key: %w", err)
	}
	pt, err := newEmpty(ps, job, point)
	if err != nil {
		return nil, err
	}
	pt.xpriv = xpriv
	copy(pt.noiseSeed[:], seeds[32:])
	if err := pt.genSecretKey(seeds[:32]); err != nil {
		return nil, err
	}
	return pt, nil
}

func newEmpty(ps he.ParamSet, job he.Job, point int) (*Party, error) {
	p, err := core.Lookup(ps.Name)
	if err != nil {
		return nil, fmt.Errorf("he party: %w", err)
	}
	return &Party{
		ps: ps, p: p, job: job, point: point,
		tag:      core.JobTag(job.ID, job.CRSSeed),
		outgoing: map[int][]byte{},
		shares:   map[int]*mhe.ShamirSecretShare{},
		addKey:   map[[8]byte]*rlwe.SecretKey{},
		enc:      map[uint64][32]byte{},
		dec:      map[uint64][32]byte{},
	}, nil
}

func (pt *Party) genSecretKey(seed []byte) (err error) {
	defer core.Recover(&err, "generate secret key")
	prng, err := sampling.NewKeyedPRNG(seed)
	if err != nil {
		return fmt.Errorf("secret key prng: %w", err)
	}
	s, err := ring.NewSampler(prng, pt.p.Ring, pt.p.RLWE.Xs(), false)
	if err != nil {
		return fmt.Errorf("secret key sampler: %w", err)
	}
	sk := rlwe.NewSecretKey(pt.p.RLWE)
	s.Read(sk.Value.Q)
	pt.p.Ring.NTT(sk.Value.Q, sk.Value.Q)
	pt.p.Ring.MForm(sk.Value.Q, sk.Value.Q)
	pt.sk = sk
	return nil
}

// Point is this site's Shamir point.
func (pt *Party) Point() int { return pt.point }

// ExchangePublicKey is this site's X25519 public key, published through the coordinator
// so that other sites can seal Shamir shares to it.
func (pt *Party) ExchangePublicKey() []byte { return pt.xpriv.PublicKey().Bytes() }

// ShamirSharesFor splits this site's key t-of-N and seals share j to peers[j] (the X25519
// public keys of all other sites, by point). It returns the sealed shares by receiver;
// calling it again returns the same bytes.
func (pt *Party) ShamirSharesFor(peers map[int][]byte) (out map[int][]byte, err error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if len(pt.outgoing) > 0 {
		return cloneMap(pt.outgoing), nil
	}
	if err := pt.checkPeers(peers); err != nil {
		return nil, err
	}
	defer core.Recover(&err, "shamir shares")
	thr := mhe.NewThresholdizer(pt.p.RLWE)
	poly, err := thr.GenShamirPolynomial(pt.job.Threshold, pt.sk)
	if err != nil {
		return nil, fmt.Errorf("shamir polynomial: %w", err)
	}
	out = map[int][]byte{}
	for j := 1; j <= pt.job.Sites; j++ {
		share := thr.AllocateThresholdSecretShare()
		thr.GenShamirSecretShare(mhe.ShamirPublicPoint(j), poly, &share)
		if j == pt.point {
			pt.shares[j] = &share
			continue
		}
		plain, err := share.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("marshal shamir share for site %d: %w", j, err)
		}
		sealed, err := seal(pt.xpriv, peers[j], pt.shareAD(pt.point, j), plain)
		if err != nil {
			return nil, fmt.Errorf("seal shamir share for site %d: %w", j, err)
		}
		out[j] = sealed
	}
	pt.outgoing = cloneMap(out)
	return out, nil
}

func (pt *Party) checkPeers(peers map[int][]byte) error {
	var missing []int
	for j := 1; j <= pt.job.Sites; j++ {
		if j != pt.point && len(peers[j]) == 0 {
			missing = append(missing, j)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no exchange key from sites %v", ErrSetupIncomplete, missing)
	}
	for j := range peers {
		if j < 1 || j > pt.job.Sites {
			return fmt.Errorf("exchange key for point %d outside 1..%d", j, pt.job.Sites)
		}
	}
	return nil
}

func (pt *Party) shareAD(from, to int) []byte {
	var b bytes.Buffer
	b.WriteString("concord-he-shamir/v1\x00")
	b.WriteString(pt.job.ID)
	b.WriteByte(0)
	b.Write(pt.tag[:])
	_ = binary.Write(&b, binary.LittleEndian, [2]uint16{uint16(from), uint16(to)})
	return b.Bytes()
}

// ReceiveShamirShares opens the shares addressed to this site, by dealer point; every
// other site must have dealt one. peers are the dealers' X25519 public keys.
func (pt *Party) ReceiveShamirShares(sealed map[int][]byte, peers map[int][]byte) (err error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if _, ok := pt.shares[pt.point]; !ok {
		return fmt.Errorf("%w: deal this site's own shares (ShamirSharesFor) first", ErrSetupIncomplete)
	}
	if err := pt.checkPeers(peers); err != nil {
		return err
	}
	var missing []int
	for j := 1; j <= pt.job.Sites; j++ {
		if j != pt.point && len(sealed[j]) == 0 {
			missing = append(missing, j)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no shamir share from sites %v", ErrSetupIncomplete, missing)
	}
	got := map[int]*mhe.ShamirSecretShare{}
	for from, b := range sealed {
		if from == pt.point {
			continue
		}
		if from < 1 || from > pt.job.Sites {
			return fmt.Errorf("shamir share from point %d outside 1..%d", from, pt.job.Sites)
		}
		plain, err := open(pt.xpriv, peers[from], pt.shareAD(from, pt.point), b)
		if err != nil {
			return fmt.Errorf("shamir share from site %d: %w", from, err)
		}
		share, err := pt.decodeShare(plain)
		if err != nil {
			return fmt.Errorf("shamir share from site %d: %w", from, err)
		}
		got[from] = share
	}
	for from, s := range got {
		pt.shares[from] = s
	}
	return nil
}

func (pt *Party) decodeShare(b []byte) (share *mhe.ShamirSecretShare, err error) {
	defer core.Recover(&err, "decode shamir share")
	s := mhe.ShamirSecretShare{Poly: pt.p.RLWE.RingQP().NewPoly()}
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if s.LevelQ() != 0 || s.LevelP() != -1 || s.Q.N() != pt.p.N() {
		return nil, fmt.Errorf("share has level %d/%d and degree %d, want 0/-1 and %d", s.LevelQ(), s.LevelP(), s.Q.N(), pt.p.N())
	}
	if slices.ContainsFunc(s.Q.Coeffs[0], func(v uint64) bool { return v >= pt.p.Q }) {
		return nil, errors.New("share is not reduced modulo q")
	}
	return &s, nil
}

func (pt *Party) setupDone() error {
	if len(pt.shares) != pt.job.Sites {
		return fmt.Errorf("%w: %d of %d shamir shares received", ErrSetupIncomplete, len(pt.shares), pt.job.Sites)
	}
	return nil
}

// Encrypt encrypts weight*update and the weight for round, one ciphertext per
// he.CiphertextsFor values, in index order; upload them as chunks. |weight*value| and
// weight must not exceed ParamSet.MaxAbsInput(job.Sites), and weight must be positive.
// Encrypting the same inputs for the same round again returns the same bytes; different
// inputs for a round already encrypted are refused.
func (pt *Party) Encrypt(round uint64, update []float32, weight float64) ([][]byte, error) {
	cts := make([][]byte, 0, pt.p.Count(len(update)))
	err := pt.EncryptEach(round, update, weight, func(_ int, ct []byte) error {
		cts = append(cts, ct)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cts, nil
}

// Commit records that this site encrypts update and weight for round, with the checks
// of Encrypt, without encrypting. Streaming callers Commit, Seal, then EncryptEach, so
// that the record is on disk before the first chunk leaves.
func (pt *Party) Commit(round uint64, update []float32, weight float64) error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.commit(round, update, weight)
}

// EncryptEach is Encrypt that hands each ciphertext to emit as soon as it is made, in
// index order, so that a large update streams out without holding all its ciphertexts.
// emit runs under the party's lock and must not call the Party. An error from emit stops
// the encryption and is returned; the round stays committed to this update (resume by
// calling again with the same inputs).
func (pt *Party) EncryptEach(round uint64, update []float32, weight float64, emit func(index int, ct []byte) error) (err error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if err := pt.commit(round, update, weight); err != nil {
		return err
	}
	defer core.Recover(&err, "encrypt")
	return pt.encryptCommitted(round, update, weight, emit)
}

func (pt *Party) commit(round uint64, update []float32, weight float64) error {
	if err := pt.setupDone(); err != nil {
		return err
	}
	limit := pt.p.MaxAbsInput(pt.job.Sites)
	if !(weight > 0) || weight > limit || math.IsInf(weight, 0) {
		return fmt.Errorf("encrypt round %d: %w: weight must be in (0, %g]", round, ErrOutOfRange, limit)
	}
	if len(update) == 0 {
		return fmt.Errorf("encrypt round %d: empty update", round)
	}
	for i, u := range update {
		v := weight * float64(u)
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > limit {
			return fmt.Errorf("encrypt round %d: %w: weight*update[%d] is not finite or exceeds %g (clip before encrypting)", round, ErrOutOfRange, i, limit)
		}
	}
	digest := inputDigest(round, update, weight)
	if prev, ok := pt.enc[round]; ok && prev != digest {
		return fmt.Errorf("encrypt round %d: %w: this site already encrypted another update for this round", round, ErrReplay)
	}
	pt.enc[round] = digest
	return nil
}

func (pt *Party) encryptCommitted(round uint64, update []float32, weight float64, emit func(index int, ct []byte) error) error {
	p := pt.p
	n := p.N()
	count := p.Count(len(update))
	vals := make([]float64, n)
	m := p.Ring.NewPoly()
	a := p.Ring.NewPoly()
	for k := 0; k < count; k++ {
		for i := range vals {
			g := k*n + i
			switch {
			case g < len(update):
				vals[i] = weight * float64(update[g])
			case g == len(update):
				vals[i] = weight
			default:
				vals[i] = 0
			}
		}
		p.EncodeValues(vals, m)
		noise, err := pt.sampler("enc", round, k, nil, p.RLWE.Xe())
		if err != nil {
			return err
		}
		noise.ReadAndAdd(m)
		p.Ring.NTT(m, m)
		if err := p.CRP(pt.job.CRSSeed, round, k, a); err != nil {
			return err
		}
		// c0 = m + e - a*s: the ciphertext's second half is a, which every party derives.
		p.Ring.MulCoeffsMontgomeryThenSub(a, pt.sk.Value.Q, m)
		ct := p.Encode(core.Header{Kind: core.KindCiphertext, Param: p.ID, Job: pt.tag, Round: round, Point: pt.point, Index: k}, m)
		if err := emit(k, ct); err != nil {
			return fmt.Errorf("encrypt round %d: chunk %d: %w", round, k, err)
		}
	}
	return nil
}

func inputDigest(round uint64, update []float32, weight float64) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], round)
	h.Write(b[:])
	binary.LittleEndian.PutUint64(b[:], math.Float64bits(weight))
	h.Write(b[:])
	buf := make([]byte, 4*1024)
	for len(update) > 0 {
		c := min(len(update), 1024)
		for i, u := range update[:c] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(u))
		}
		h.Write(buf[:4*c])
		update = update[c:]
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// sampler returns a Gaussian sampler whose randomness is derived from this site's
// secret noise seed and the context, so that equal inputs give equal bytes.
func (pt *Party) sampler(purpose string, round uint64, index int, ctx []byte, dist ring.DistributionParameters) (ring.Sampler, error) {
	h := sha256.New()
	h.Write([]byte("concord-he-noise/" + purpose + "\x00"))
	h.Write(pt.noiseSeed[:])
	h.Write(pt.tag[:])
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], round)
	binary.LittleEndian.PutUint32(b[8:], uint32(index))
	h.Write(b[:])
	h.Write(ctx)
	prng, err := sampling.NewKeyedPRNG(h.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("noise prng: %w", err)
	}
	s, err := ring.NewSampler(prng, pt.p.Ring, dist, false)
	if err != nil {
		return nil, fmt.Errorf("noise sampler: %w", err)
	}
	return s, nil
}

// DecryptionShares computes this site's share of every ciphertext of the round that req
// closes. The site must be in req.Committee. It refuses a request that would decrypt
// fewer contributors than the threshold, or a round already decrypted with another set
// of contributors.
func (pt *Party) DecryptionShares(req he.DecryptionRequest) (shares [][]byte, err error) {
	shares = make([][]byte, 0, req.Ciphertexts)
	for k := 0; k < req.Ciphertexts; k++ {
		s, err := pt.DecryptionShare(req, k)
		if err != nil {
			return nil, err
		}
		shares = append(shares, s)
	}
	return shares, nil
}

// DecryptionShare computes this site's share of ciphertext index of the round req closes.
func (pt *Party) DecryptionShare(req he.DecryptionRequest, index int) (share []byte, err error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if err := pt.setupDone(); err != nil {
		return nil, err
	}
	if err := req.Validate(pt.job); err != nil {
		return nil, err
	}
	if !slices.Contains(req.Committee, pt.point) {
		return nil, fmt.Errorf("decryption share: site %d is not in the committee %v", pt.point, req.Committee)
	}
	if index < 0 || index >= req.Ciphertexts {
		return nil, fmt.Errorf("decryption share: index %d outside 0..%d", index, req.Ciphertexts-1)
	}
	cd := contributorsDigest(req.Contributors)
	if prev, ok := pt.dec[req.Round]; ok && prev != cd {
		return nil, fmt.Errorf("decryption share for round %d: %w: the round was already decrypted with other contributors", req.Round, ErrReplay)
	}
	defer core.Recover(&err, "decryption share")
	digest := req.Digest()
	key, ok := pt.addKey[digest]
	if !ok {
		key, err = pt.additiveKey(req)
		if err != nil {
			return nil, err
		}
		pt.addKey = map[[8]byte]*rlwe.SecretKey{digest: key}
	}
	p := pt.p
	a := p.Ring.NewPoly()
	if err := p.CRP(pt.job.CRSSeed, req.Round, index, a); err != nil {
		return nil, err
	}
	e := p.Ring.NewPoly()
	smudge, err := pt.sampler("dec", req.Round, index, digest[:], ring.DiscreteGaussian{Sigma: p.SmudgingSigma, Bound: 6 * p.SmudgingSigma})
	if err != nil {
		return nil, err
	}
	smudge.Read(e)
	p.Ring.NTT(e, e)
	// h = a * key + e, with sum over the committee of key = sum over contributors of s_i.
	p.Ring.MulCoeffsMontgomeryThenAdd(a, key.Value.Q, e)
	pt.dec[req.Round] = cd
	return p.Encode(core.Header{Kind: core.KindShare, Param: p.ID, Job: pt.tag, Round: req.Round, Point: pt.point, Index: index, Context: digest}, e), nil
}

// additiveKey is lambda_own * sum over contributors i of share_i(own): the committee's
// keys add up to the contributors' summed secret keys.
func (pt *Party) additiveKey(req he.DecryptionRequest) (*rlwe.SecretKey, error) {
	thr := mhe.NewThresholdizer(pt.p.RLWE)
	sum := thr.AllocateThresholdSecretShare()
	for _, i := range req.Contributors {
		s, ok := pt.shares[i]
		if !ok {
			return nil, fmt.Errorf("%w: no shamir share of site %d's key", ErrSetupIncomplete, i)
		}
		if err := thr.AggregateShares(sum, *s, &sum); err != nil {
			return nil, fmt.Errorf("sum shamir shares: %w", err)
		}
	}
	points := make([]mhe.ShamirPublicPoint, len(req.Committee))
	for i, c := range req.Committee {
		points[i] = mhe.ShamirPublicPoint(c)
	}
	own := mhe.ShamirPublicPoint(pt.point)
	cmb := mhe.NewCombiner(pt.p.RLWE, own, points, pt.job.Threshold)
	key := rlwe.NewSecretKey(pt.p.RLWE)
	if err := cmb.GenAdditiveShare(points, own, sum, key); err != nil {
		return nil, fmt.Errorf("additive share: %w", err)
	}
	return key, nil
}

func contributorsDigest(pts []int) [32]byte {
	h := sha256.New()
	for _, p := range pts {
		_ = binary.Write(h, binary.LittleEndian, uint16(p))
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

func cloneMap(m map[int][]byte) map[int][]byte {
	out := make(map[int][]byte, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}
