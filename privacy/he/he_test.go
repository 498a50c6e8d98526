package he_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/concord-fl/concord/privacy/he"
	"github.com/concord-fl/concord/privacy/he/internal/core"
)

func TestParamSets(t *testing.T) {
	sets := he.ParamSets()
	if len(sets) == 0 || sets[0].Name != he.Default {
		t.Fatalf("parameter sets %v, want the default first", sets)
	}
	for _, ps := range sets {
		if max := core.MaxLogQ128[ps.LogN]; ps.LogQ > max {
			t.Errorf("%s: logQ %d above the 128-bit bound %d", ps.Name, ps.LogQ, max)
		}
		if ps.SecurityBits != 128 {
			t.Errorf("%s: %d-bit security", ps.Name, ps.SecurityBits)
		}
		// Headroom: sites*MaxAbsInput*scale + noise < q/2.
		for _, n := range []int{1, 3, 10, 50, ps.MaxSites} {
			m := ps.MaxAbsInput(n)
			if m < 1 {
				t.Errorf("%s: MaxAbsInput(%d) = %g leaves no room", ps.Name, n, m)
			}
			p, _ := core.Lookup(ps.Name)
			if float64(n)*m*p.Scale+p.NoiseBound(n, n) >= float64(p.Q/2) {
				t.Errorf("%s: MaxAbsInput(%d) overflows q/2", ps.Name, n)
			}
		}
		if bpv := ps.BytesPerValue(1_000_000); bpv > 8 {
			t.Errorf("%s: %.2f bytes per value, goal is 8", ps.Name, bpv)
		}
	}
	if _, err := he.Lookup("n99"); err == nil {
		t.Fatal("unknown parameter set accepted")
	}
}

func TestPackRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, w := range []uint{1, 7, 59, 60, 61, 64} {
		for _, n := range []int{1, 3, 64, 4096} {
			in := make([]uint64, n)
			for i := range in {
				in[i] = r.Uint64() >> (64 - w)
			}
			buf := make([]byte, (n*int(w)+7)/8)
			core.Pack(buf, in, w)
			out := make([]uint64, n)
			core.Unpack(buf, out, w)
			if !slices.Equal(in, out) {
				t.Fatalf("width %d, %d values: round trip differs", w, n)
			}
		}
	}
}

func TestJobAndRequestValidation(t *testing.T) {
	good := he.Job{ID: "j", CRSSeed: make([]byte, 16), Sites: 3, Threshold: 2}
	for _, bad := range []he.Job{
		{CRSSeed: make([]byte, 16), Sites: 3, Threshold: 2},
		{ID: "j", CRSSeed: make([]byte, 8), Sites: 3, Threshold: 2},
		{ID: "j", CRSSeed: make([]byte, 16), Sites: 3, Threshold: 4},
		{ID: "j", CRSSeed: make([]byte, 16), Sites: 0, Threshold: 0},
	} {
		if bad.Validate() == nil {
			t.Errorf("job %+v accepted", bad)
		}
	}
	req := he.DecryptionRequest{Round: 9, Contributors: []int{1, 2, 3}, Committee: []int{2, 3}, Ciphertexts: 4}
	if err := req.Validate(good); err != nil {
		t.Fatal(err)
	}
	b, _ := req.MarshalBinary()
	back, err := he.UnmarshalDecryptionRequest(b)
	if err != nil || back.Digest() != req.Digest() {
		t.Fatalf("request round trip: %v", err)
	}
	for _, cut := range []int{0, 5, len(b) - 1} {
		if _, err := he.UnmarshalDecryptionRequest(b[:cut]); err == nil {
			t.Errorf("request cut at %d accepted", cut)
		}
	}
	for _, bad := range []he.DecryptionRequest{
		{Round: 1, Contributors: []int{1, 2, 3}, Committee: []int{3, 2}, Ciphertexts: 1},
		{Round: 1, Contributors: []int{1, 2, 4}, Committee: []int{2, 3}, Ciphertexts: 1},
		{Round: 1, Contributors: []int{1}, Committee: []int{2, 3}, Ciphertexts: 1},
		{Round: 1, Contributors: []int{1, 2, 3}, Committee: []int{1, 2, 3}, Ciphertexts: 1},
	} {
		if bad.Validate(good) == nil {
			t.Errorf("request %+v accepted", bad)
		}
	}
}

func TestResultMean(t *testing.T) {
	m, err := he.Result{Sum: []float64{2, -4}, TotalWeight: 4}.Mean()
	if err != nil || m[0] != 0.5 || m[1] != -1 {
		t.Fatalf("mean %v, %v", m, err)
	}
	if _, err := (he.Result{Sum: []float64{1}, TotalWeight: math.NaN()}).Mean(); err == nil {
		t.Fatal("NaN weight accepted")
	}
}

func FuzzAggregateAdd(f *testing.F) {
	ps, err := he.Lookup("")
	if err != nil {
		f.Fatal(err)
	}
	job := he.Job{ID: "fuzz", CRSSeed: make([]byte, 16), Sites: 4, Threshold: 2}
	f.Add([]byte("CHE\x01"))
	f.Add(make([]byte, ps.CiphertextBytes))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		agg, err := he.NewAggregate(ps, job, 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		err = agg.Add(1, b)
		if err != nil && !errors.Is(err, he.ErrRejected) {
			t.Fatalf("error that is not a rejection: %v", err)
		}
		if _, err := he.UnmarshalAggregate(ps, job, b); err == nil && len(b) < 32 {
			t.Fatal("short aggregate accepted")
		}
		if _, err := agg.UnmarshalDecryption(b); err == nil {
			t.Fatal("decryption state restored into an aggregate without contributors")
		}
		_, _ = he.UnmarshalDecryptionRequest(b)
	})
}
