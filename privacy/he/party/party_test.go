package party_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/concord-fl/concord/privacy/he"
	"github.com/concord-fl/concord/privacy/he/party"
)

// seeded is a deterministic io.Reader for reproducible keys in tests.
type seeded struct{ r *rand.ChaCha8 }

func (s seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

func newRand(seed uint64) seeded {
	var k [32]byte
	k[0], k[1] = byte(seed), byte(seed>>8)
	return seeded{rand.NewChaCha8(k)}
}

type federation struct {
	ps      he.ParamSet
	job     he.Job
	parties map[int]*party.Party
}

// setup runs the whole key setup through byte maps, as the coordinator relays it.
func setup(t testing.TB, sites, threshold int) *federation {
	t.Helper()
	ps, err := he.Lookup(he.Default)
	if err != nil {
		t.Fatal(err)
	}
	job := he.Job{ID: fmt.Sprintf("job-%d-%d", sites, threshold), CRSSeed: []byte("0123456789abcdef-public-seed"), Sites: sites, Threshold: threshold}
	f := &federation{ps: ps, job: job, parties: map[int]*party.Party{}}
	pubs := map[int][]byte{}
	for i := 1; i <= sites; i++ {
		p, err := party.New(ps, job, i, newRand(uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.parties[i] = p
		pubs[i] = p.ExchangePublicKey()
	}
	inbox := map[int]map[int][]byte{}
	for i, p := range f.parties {
		out, err := p.ShamirSharesFor(pubs)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != sites-1 {
			t.Fatalf("site %d dealt %d shares, want %d", i, len(out), sites-1)
		}
		for to, b := range out {
			if inbox[to] == nil {
				inbox[to] = map[int][]byte{}
			}
			inbox[to][i] = b
		}
	}
	for i, p := range f.parties {
		if err := p.ReceiveShamirShares(inbox[i], pubs); err != nil {
			t.Fatalf("site %d: %v", i, err)
		}
	}
	return f
}

type update struct {
	values []float32
	weight float64
}

func makeUpdates(points []int, numValues int, seed uint64) map[int]update {
	r := rand.New(rand.NewPCG(seed, 7))
	out := map[int]update{}
	for _, pt := range points {
		u := make([]float32, numValues)
		for i := range u {
			u[i] = float32(r.Float64()*2 - 1)
		}
		out[pt] = update{values: u, weight: float64(100 + r.IntN(900))}
	}
	return out
}

func plainMean(ups map[int]update, numValues int) []float64 {
	sum := make([]float64, numValues)
	var w float64
	for _, u := range ups {
		for i, v := range u.values {
			sum[i] += u.weight * float64(v)
		}
		w += u.weight
	}
	for i := range sum {
		sum[i] /= w
	}
	return sum
}

// round encrypts the updates of uploaders, adds them, and decrypts with available.
func (f *federation) round(t testing.TB, r uint64, ups map[int]update, numValues int, available []int) (he.Result, error) {
	t.Helper()
	agg, err := he.NewAggregate(f.ps, f.job, r, numValues)
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range slices.Sorted(mapsKeys(ups)) {
		cts, err := f.parties[pt].Encrypt(r, ups[pt].values, ups[pt].weight)
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range cts {
			if err := agg.Add(pt, ct); err != nil {
				t.Fatal(err)
			}
		}
	}
	req, err := agg.DecryptionRequest(available)
	if err != nil {
		return he.Result{}, err
	}
	shares := map[int][][]byte{}
	for _, pt := range req.Committee {
		s, err := f.parties[pt].DecryptionShares(req)
		if err != nil {
			t.Fatal(err)
		}
		shares[pt] = s
	}
	return agg.Combine(req, shares)
}

func mapsKeys[V any](m map[int]V) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func without(n int, dead ...int) []int {
	var out []int
	for i := 1; i <= n; i++ {
		if !slices.Contains(dead, i) {
			out = append(out, i)
		}
	}
	return out
}

func checkMean(t *testing.T, f *federation, res he.Result, ups map[int]update, numValues, contributors int) {
	t.Helper()
	want := plainMean(ups, numValues)
	got, err := res.Mean()
	if err != nil {
		t.Fatal(err)
	}
	var wantW float64
	for _, u := range ups {
		wantW += u.weight
	}
	bound := f.ps.ErrorBound(contributors, f.job.Threshold)
	if d := math.Abs(res.TotalWeight - wantW); d > bound {
		t.Fatalf("total weight %v, want %v (error %g > bound %g)", res.TotalWeight, wantW, d, bound)
	}
	maxErr := 0.0
	for i := range want {
		maxErr = math.Max(maxErr, math.Abs(got[i]-want[i]))
	}
	// The mean's error is the sum's error over the weight, plus the weight's error
	// relayed through the division.
	meanBound := bound/wantW + bound*float64(contributors)/wantW
	if maxErr > meanBound {
		t.Fatalf("max abs error of the mean %g exceeds the documented bound %g", maxErr, meanBound)
	}
	if maxErr == 0 {
		t.Fatalf("decryption is exact: noise is missing")
	}
	t.Logf("%d contributors: max abs error of the mean %.3g (bound %.3g)", contributors, maxErr, meanBound)
}

const numValues = 5000 // two ciphertexts: the weight and a chunk boundary are exercised

func TestTenSitesThresholdSevenThreeDropBeforeUpload(t *testing.T) {
	f := setup(t, 10, 7)
	alive := without(10, 2, 5, 9)
	ups := makeUpdates(alive, numValues, 1)
	res, err := f.round(t, 1, ups, numValues, alive)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Contributors, alive) {
		t.Fatalf("contributors %v, want %v", res.Contributors, alive)
	}
	checkMean(t, f, res, ups, numValues, 7)
}

func TestTenSitesThresholdSevenThreeDropAfterUpload(t *testing.T) {
	f := setup(t, 10, 7)
	all := without(10)
	ups := makeUpdates(all, numValues, 2)
	// All ten uploaded; three die before decryption: their keys are rebuilt from shares.
	res, err := f.round(t, 1, ups, numValues, without(10, 1, 4, 10))
	if err != nil {
		t.Fatal(err)
	}
	checkMean(t, f, res, ups, numValues, 10)
}

func TestTenSitesThresholdSevenFourDropAborts(t *testing.T) {
	f := setup(t, 10, 7)
	alive := without(10, 1, 2, 3, 4)
	_, err := f.round(t, 1, makeUpdates(alive, 100, 3), 100, alive)
	if !errors.Is(err, he.ErrTooFewContributors) {
		t.Fatalf("error %v, want ErrTooFewContributors", err)
	}
	// All uploaded, four die before decrypting: not enough parties.
	_, err = f.round(t, 2, makeUpdates(without(10), 100, 4), 100, alive)
	if !errors.Is(err, he.ErrNotEnoughParties) {
		t.Fatalf("error %v, want ErrNotEnoughParties", err)
	}
}

func TestCombineRefusesMissingShares(t *testing.T) {
	f := setup(t, 10, 7)
	all := without(10)
	ups := makeUpdates(all, 100, 5)
	agg, _ := he.NewAggregate(f.ps, f.job, 1, 100)
	for pt, u := range ups {
		cts, err := f.parties[pt].Encrypt(1, u.values, u.weight)
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range cts {
			if err := agg.Add(pt, ct); err != nil {
				t.Fatal(err)
			}
		}
	}
	req, err := agg.DecryptionRequest(all)
	if err != nil {
		t.Fatal(err)
	}
	shares := map[int][][]byte{}
	for _, pt := range req.Committee[:6] { // the seventh died mid-decryption
		shares[pt], err = f.parties[pt].DecryptionShares(req)
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := agg.Combine(req, shares)
	if !errors.Is(err, he.ErrMissingShares) {
		t.Fatalf("error %v, want ErrMissingShares", err)
	}
	if res.Sum != nil {
		t.Fatal("a sum was returned without all shares")
	}
	// A share from a site outside the committee is rejected with the reason.
	outsider := without(10, req.Committee...)[0]
	other := req
	other.Committee = append(slices.Clone(req.Committee[1:]), outsider)
	slices.Sort(other.Committee)
	s, err := f.parties[outsider].DecryptionShare(other, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := agg.NewDecryption(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddShare(outsider, s); !errors.Is(err, he.ErrRejected) {
		t.Fatalf("share from outside the committee: %v, want ErrRejected", err)
	}
	// A committee member's share computed for another request is rejected.
	s2, err := f.parties[other.Committee[0]].DecryptionShare(other, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddShare(other.Committee[0], s2); !errors.Is(err, he.ErrRejected) {
		t.Fatalf("share for another request: %v, want ErrRejected", err)
	}
}

func TestAggregateSurvivesRestartBitIdentical(t *testing.T) {
	f := setup(t, 5, 3)
	all := without(5)
	ups := makeUpdates(all, numValues, 6)
	straight, err := f.round(t, 1, ups, numValues, all)
	if err != nil {
		t.Fatal(err)
	}

	g := setup(t, 5, 3) // same seeds: same keys
	agg, _ := he.NewAggregate(g.ps, g.job, 1, numValues)
	for _, pt := range all {
		cts, err := g.parties[pt].Encrypt(1, ups[pt].values, ups[pt].weight)
		if err != nil {
			t.Fatal(err)
		}
		for k, ct := range cts {
			if err := agg.Add(pt, ct); err != nil {
				t.Fatal(err)
			}
			if pt == 3 && k == 0 { // the coordinator restarts mid-upload
				b, err := agg.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				agg, err = he.UnmarshalAggregate(g.ps, g.job, b)
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	req, err := agg.DecryptionRequest(all)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := agg.NewDecryption(req)
	for n, pt := range req.Committee {
		shares, err := g.parties[pt].DecryptionShares(req)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range shares {
			if err := d.AddShare(pt, s); err != nil {
				t.Fatal(err)
			}
		}
		if n == 0 { // and restarts again after the first committee member's shares
			b, err := d.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			aggBytes := mustMarshal(t, agg)
			if agg, err = he.UnmarshalAggregate(g.ps, g.job, aggBytes); err != nil {
				t.Fatal(err)
			}
			if d, err = agg.UnmarshalDecryption(b); err != nil {
				t.Fatal(err)
			}
			if m := d.Missing(); slices.Contains(m, pt) || len(m) != len(req.Committee)-1 {
				t.Fatalf("after restore, missing %v", m)
			}
			if _, err := agg.UnmarshalDecryption(b[:len(b)-1]); err == nil {
				t.Fatal("truncated decryption state accepted")
			}
		}
	}
	resumed, err := d.Result()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(straight.Sum, resumed.Sum) || straight.TotalWeight != resumed.TotalWeight {
		t.Fatal("resumed round decrypts to a different result")
	}
	if _, err := he.UnmarshalAggregate(g.ps, he.Job{ID: "other", CRSSeed: g.job.CRSSeed, Sites: 5, Threshold: 3}, mustMarshal(t, agg)); err == nil {
		t.Fatal("aggregate restored into another job")
	}
}

func mustMarshal(t *testing.T, a *he.Aggregate) []byte {
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCiphertextRejections(t *testing.T) {
	f := setup(t, 3, 2)
	ups := makeUpdates([]int{1}, numValues, 8)
	cts, err := f.parties[1].Encrypt(1, ups[1].values, ups[1].weight)
	if err != nil {
		t.Fatal(err)
	}
	good := cts[0]
	mut := func(off int, v byte) []byte {
		b := slices.Clone(good)
		b[off] = v
		return b
	}
	// Header layout: magic 4, kind 1, param 4, job 8, round 8, point 2, index 4, ctx 8, logN, levels, bits.
	const meta = 4 + 1 + 4 + 8 + 8 + 2 + 4 + 8
	hugeCoeff := slices.Clone(good)
	for i := meta + 3; i < meta+3+8; i++ { // coefficient 0 becomes 2^60-1 >= q
		hugeCoeff[i] = 0xff
	}
	cases := []struct {
		name, from string
		ct         []byte
		site       int
		round      uint64
		want       string
	}{
		{"wrong parameters", "param id", mut(5, good[5]^1), 1, 1, "another parameter set"},
		{"wrong degree", "logN", mut(meta, 13), 1, 1, "ring degree"},
		{"wrong level", "levels", mut(meta+1, 2), 1, 1, "moduli"},
		{"wrong width", "bits", mut(meta+2, 61), 1, 1, "coefficients"},
		{"truncated", "", good[:len(good)-1], 1, 1, "bytes, want"},
		{"short", "", good[:10], 1, 1, "shorter than"},
		{"not he", "", []byte("hello, world, this is not a ciphertext at all........"), 1, 1, "not a concord"},
		{"unreduced coefficient", "", hugeCoeff, 1, 1, "not reduced"},
		{"wrong round", "", good, 1, 2, "round"},
		{"spoofed sender", "", good, 2, 1, "made by site 1"},
		{"wrong job", "job tag", mut(9, good[9]^1), 1, 1, "another job"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			agg, _ := he.NewAggregate(f.ps, f.job, c.round, numValues)
			err := agg.Add(c.site, c.ct)
			if !errors.Is(err, he.ErrRejected) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("error %v, want ErrRejected mentioning %q", err, c.want)
			}
			if complete, partial := agg.Contributors(); len(complete)+len(partial) != 0 {
				t.Fatal("a rejected ciphertext was counted")
			}
		})
	}
	agg, _ := he.NewAggregate(f.ps, f.job, 1, numValues)
	if err := agg.Add(1, good); err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(1, good); !errors.Is(err, he.ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := agg.DecryptionRequest([]int{1, 2, 3}); !errors.Is(err, he.ErrIncompleteUploads) {
		t.Fatalf("partial upload: %v, want ErrIncompleteUploads", err)
	}
	small, _ := he.NewAggregate(f.ps, f.job, 1, 10)
	if err := small.Add(1, cts[1]); !errors.Is(err, he.ErrRejected) {
		t.Fatalf("index beyond the update: %v", err)
	}
}

func TestSealedSharesUnreadableByOthers(t *testing.T) {
	f := setup(t, 3, 2)
	pubs := map[int][]byte{}
	for i, p := range f.parties {
		pubs[i] = p.ExchangePublicKey()
	}
	out, err := f.parties[1].ShamirSharesFor(pubs)
	if err != nil {
		t.Fatal(err)
	}
	// Site 3 receives site 1's share for site 2 (a misrouting or curious relay).
	err = f.parties[3].ReceiveShamirShares(map[int][]byte{1: out[2], 2: out[3]}, pubs)
	if !errors.Is(err, party.ErrOpen) {
		t.Fatalf("a share sealed to site 2 opened at site 3: %v", err)
	}
	// A relay that flips one bit is detected.
	bad := slices.Clone(out[3])
	bad[len(bad)-1] ^= 1
	if err := f.parties[3].ReceiveShamirShares(map[int][]byte{1: bad, 2: out[3]}, pubs); !errors.Is(err, party.ErrOpen) {
		t.Fatalf("tampered share accepted: %v", err)
	}
	// The sealed bytes do not contain the plaintext share's coefficients in the clear:
	// the same share sealed twice differs (fresh nonce) only in nonce and ciphertext.
	if bytes.Equal(out[2][:12], out[3][:12]) {
		t.Fatal("nonces repeat")
	}
}

func TestKeyAtRest(t *testing.T) {
	f := setup(t, 3, 2)
	key := bytes.Repeat([]byte{7}, 32)
	sealed, err := f.parties[2].Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := party.Open(sealed, key)
	if err != nil {
		t.Fatal(err)
	}
	u := makeUpdates([]int{2}, 300, 9)[2]
	a, err := f.parties[2].Encrypt(4, u.values, u.weight)
	if err != nil {
		t.Fatal(err)
	}
	b, err := restored.Encrypt(4, u.values, u.weight)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatal("restored party encrypts differently: key material not restored")
	}
	if _, err := party.Open(sealed, bytes.Repeat([]byte{8}, 32)); !errors.Is(err, party.ErrOpen) {
		t.Fatalf("wrong key: %v, want ErrOpen", err)
	}
	if _, err := party.Open(sealed[:20], key); !errors.Is(err, party.ErrOpen) {
		t.Fatalf("truncated: %v, want ErrOpen", err)
	}
	if _, err := f.parties[2].Seal(key[:16]); err == nil {
		t.Fatal("short storage key accepted")
	}
	if bytes.Contains(sealed, []byte(f.job.ID)) {
		t.Fatal("sealed state leaks plaintext")
	}
}

func TestEncryptRefusals(t *testing.T) {
	f := setup(t, 3, 2)
	p := f.parties[1]
	limit := f.ps.MaxAbsInput(3)
	if _, err := p.Encrypt(1, []float32{1, 2}, limit*2); !errors.Is(err, party.ErrOutOfRange) {
		t.Fatalf("weight beyond bound: %v", err)
	}
	if _, err := p.Encrypt(1, []float32{float32(math.NaN())}, 1); !errors.Is(err, party.ErrOutOfRange) {
		t.Fatalf("NaN: %v", err)
	}
	if _, err := p.Encrypt(1, []float32{float32(limit)}, 2); !errors.Is(err, party.ErrOutOfRange) {
		t.Fatalf("value beyond bound: %v", err)
	}
	if _, err := p.Encrypt(1, []float32{1}, 0); !errors.Is(err, party.ErrOutOfRange) {
		t.Fatalf("zero weight: %v", err)
	}
	a, err := p.Encrypt(1, []float32{0.5, -0.25}, 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Encrypt(1, []float32{0.5, -0.25}, 10)
	if err != nil || !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatalf("re-encrypting the same update: %v", err)
	}
	if _, err := p.Encrypt(1, []float32{0.5, -0.26}, 10); !errors.Is(err, party.ErrReplay) {
		t.Fatalf("second update for one round: %v, want ErrReplay", err)
	}
	fresh, err := party.New(f.ps, f.job, 1, newRand(99))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Encrypt(1, []float32{1}, 1); !errors.Is(err, party.ErrSetupIncomplete) {
		t.Fatalf("encrypt before key setup: %v", err)
	}
}

func TestDecryptOnceWithOneContributorSet(t *testing.T) {
	f := setup(t, 4, 2)
	req := he.DecryptionRequest{Round: 3, Contributors: []int{1, 2, 3, 4}, Committee: []int{1, 2}, Ciphertexts: 1}
	if _, err := f.parties[1].DecryptionShare(req, 0); err != nil {
		t.Fatal(err)
	}
	// Asking again without site 4 would give sum(all) - sum(without 4) = site 4's update.
	req.Contributors = []int{1, 2, 3}
	if _, err := f.parties[1].DecryptionShare(req, 0); !errors.Is(err, party.ErrReplay) {
		t.Fatalf("second contributor set: %v, want ErrReplay", err)
	}
	req.Contributors = []int{1}
	if _, err := f.parties[2].DecryptionShare(req, 0); !errors.Is(err, he.ErrTooFewContributors) {
		t.Fatalf("a single contributor: %v, want ErrTooFewContributors", err)
	}
}

func TestConcurrentUploads(t *testing.T) {
	f := setup(t, 4, 3)
	all := without(4)
	ups := makeUpdates(all, numValues, 11)
	agg, _ := he.NewAggregate(f.ps, f.job, 1, numValues)
	errs := make(chan error, len(all))
	for _, pt := range all {
		go func() {
			cts, err := f.parties[pt].Encrypt(1, ups[pt].values, ups[pt].weight)
			for _, ct := range cts {
				if err == nil {
					err = agg.Add(pt, ct)
				}
			}
			errs <- err
		}()
	}
	for range all {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	req, err := agg.DecryptionRequest(all)
	if err != nil {
		t.Fatal(err)
	}
	shares := map[int][][]byte{}
	for _, pt := range req.Committee {
		if shares[pt], err = f.parties[pt].DecryptionShares(req); err != nil {
			t.Fatal(err)
		}
	}
	res, err := agg.Combine(req, shares)
	if err != nil {
		t.Fatal(err)
	}
	checkMean(t, f, res, ups, numValues, 4)
}

func TestCommitSealStream(t *testing.T) {
	f := setup(t, 3, 2)
	key := bytes.Repeat([]byte{1}, 32)
	u := makeUpdates([]int{1}, numValues, 12)[1]
	if err := f.parties[1].Commit(5, u.values, u.weight); err != nil {
		t.Fatal(err)
	}
	sealed, err := f.parties[1].Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	// The site crashes after sealing; the restarted site must not encrypt another update.
	restarted, err := party.Open(sealed, key)
	if err != nil {
		t.Fatal(err)
	}
	other := makeUpdates([]int{1}, numValues, 13)[1]
	if _, err := restarted.Encrypt(5, other.values, other.weight); !errors.Is(err, party.ErrReplay) {
		t.Fatalf("other update after restart: %v, want ErrReplay", err)
	}
	var streamed [][]byte
	stop := errors.New("network down")
	err = restarted.EncryptEach(5, u.values, u.weight, func(i int, ct []byte) error {
		if i == 1 {
			return stop
		}
		streamed = append(streamed, ct)
		return nil
	})
	if !errors.Is(err, stop) || len(streamed) != 1 {
		t.Fatalf("emit error: %v after %d chunks", err, len(streamed))
	}
	all, err := restarted.Encrypt(5, u.values, u.weight)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(all[0], streamed[0]) || len(all) != he.CiphertextsFor(f.ps, numValues) {
		t.Fatal("streamed and whole encryptions differ")
	}
}
