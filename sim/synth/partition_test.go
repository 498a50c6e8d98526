package synth

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/learning"
)

func balancedLabels(n, classes int) []int {
	l := make([]int, n)
	for i := range l {
		l[i] = i % classes
	}
	return l
}

func checkCoverage(t *testing.T, parts [][]int, n int) {
	t.Helper()
	seen := make([]bool, n)
	for s, p := range parts {
		if len(p) < MinPerSite {
			t.Fatalf("site %d got %d samples, fewer than %d", s, len(p), MinPerSite)
		}
		if !slices.IsSorted(p) {
			t.Fatalf("site %d indices are not sorted", s)
		}
		for _, i := range p {
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("index %d out of range or given twice", i)
			}
			seen[i] = true
		}
	}
	if k := slices.Index(seen, false); k >= 0 {
		t.Fatalf("index %d given to no site", k)
	}
}

func TestPartitionCoverageAndDeterminism(t *testing.T) {
	labels := balancedLabels(1000, 3)
	for _, scheme := range []string{"iid", "dirichlet:0.1", "dirichlet:0.5", "dirichlet:1", "dirichlet:100"} {
		a, err := Partition(labels, 7, scheme, 3)
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		checkCoverage(t, a, len(labels))
		b, _ := Partition(labels, 7, scheme, 3)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: same seed gave different partitions", scheme)
		}
		c, _ := Partition(labels, 7, scheme, 4)
		if reflect.DeepEqual(a, c) {
			t.Fatalf("%s: the seed is ignored", scheme)
		}
	}
	iid, _ := Partition(labels, 7, "iid", 1)
	for _, p := range iid {
		if len(p) < 1000/7 || len(p) > 1000/7+1 {
			t.Fatalf("iid site has %d samples, want %d or %d", len(p), 1000/7, 1000/7+1)
		}
	}
}

func TestPartitionSkewGrowsAsAlphaShrinks(t *testing.T) {
	labels := balancedLabels(2000, 2)
	mean := func(scheme string) float64 {
		var s float64
		for seed := range int64(10) {
			p, err := Partition(labels, 5, scheme, seed)
			if err != nil {
				t.Fatalf("%s: %v", scheme, err)
			}
			s += LabelSkew(labels, p)
		}
		return s / 10
	}
	iid, a100, a1, a01 := mean("iid"), mean("dirichlet:100"), mean("dirichlet:1"), mean("dirichlet:0.1")
	t.Logf("mean label skew: iid %.3f, alpha 100 %.3f, alpha 1 %.3f, alpha 0.1 %.3f", iid, a100, a1, a01)
	if !(iid < 0.05 && a100 < a1 && a1 < a01 && a01 > 0.3) {
		t.Errorf("label skew does not grow as alpha shrinks: iid %.3f, 100 %.3f, 1 %.3f, 0.1 %.3f", iid, a100, a1, a01)
	}
}

func TestPartitionErrors(t *testing.T) {
	labels := balancedLabels(100, 2)
	for _, tc := range []struct {
		labels []int
		sites  int
		scheme string
	}{
		{labels, 0, "iid"},
		{labels, 13, "iid"}, // 13*8 > 100
		{labels, 3, ""},
		{labels, 3, "IID"},
		{labels, 3, "iid:2"},
		{labels, 3, "dirichlet"},
		{labels, 3, "dirichlet:"},
		{labels, 3, "dirichlet:0"},
		{labels, 3, "dirichlet:-1"},
		{labels, 3, "dirichlet:NaN"},
		{labels, 3, "dirichlet:Inf"},
		{labels, 3, "dirichlet:abc"},
		{labels, 3, "shards:2"},
		{[]int{0, 1, -1, 0, 1, 0, 1, 0, 1, 0}, 1, "iid"},
		{nil, 1, "iid"},
		// Tiny alpha with many sites cannot give everyone 8 samples.
		{balancedLabels(120, 2), 12, "dirichlet:0.01"},
	} {
		_, err := Partition(tc.labels, tc.sites, tc.scheme, 1)
		if !errors.Is(err, ErrPartition) {
			t.Errorf("Partition(%d labels, %d sites, %q) = %v, want an ErrPartition", len(tc.labels), tc.sites, tc.scheme, err)
		}
	}
}

// TestPartitionMedMNIST splits the real PneumoniaMNIST training labels
// (1214 normal, 3494 pneumonia) the way the simulator does.
func TestPartitionMedMNIST(t *testing.T) {
	npz, err := learning.LoadMedMNIST(testenv.Shared(t, "data/medmnist/pneumoniamnist.npz"))
	if err != nil {
		t.Fatal(err)
	}
	labels := npz.Train.Y
	if len(labels) != 4708 {
		t.Fatalf("%d training labels, want 4708", len(labels))
	}
	for _, scheme := range []string{"iid", "dirichlet:0.3"} {
		p, err := Partition(labels, 5, scheme, 2026)
		if err != nil {
			t.Fatal(err)
		}
		checkCoverage(t, p, len(labels))
		t.Logf("%s: label skew %.3f", scheme, LabelSkew(labels, p))
	}
}

func TestGammaMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, alpha := range []float64{0.05, 0.3, 1, 2.5, 20} {
		const n = 40000
		var m, m2 float64
		for range n {
			x := math.Exp(logGamma(rng, alpha))
			m += x
			m2 += x * x
		}
		m /= n
		v := m2/n - m*m
		// Gamma(alpha, 1) has mean and variance alpha.
		if math.Abs(m-alpha) > 0.05*alpha+0.01 || math.Abs(v-alpha) > 0.15*alpha+0.01 {
			t.Errorf("Gamma(%v): mean %.4f variance %.4f, want both %v", alpha, m, v, alpha)
		}
	}
	p := make([]float64, 6)
	dirichlet(rng, 0.001, p) // every Gamma draw underflows without log space
	var sum float64
	for _, v := range p {
		if math.IsNaN(v) || v < 0 {
			t.Fatalf("dirichlet(0.001) gave %v", p)
		}
		sum += v
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("dirichlet proportions sum to %v", sum)
	}
}

func TestLabelSkewBounds(t *testing.T) {
	labels := []int{0, 0, 1, 1}
	if s := LabelSkew(labels, [][]int{{0, 2}, {1, 3}}); s != 0 {
		t.Errorf("balanced sites: skew %v, want 0", s)
	}
	if s := LabelSkew(labels, [][]int{{0, 1}, {2, 3}}); math.Abs(s-0.5) > 1e-12 {
		t.Errorf("one class per site: skew %v, want 0.5", s)
	}
	if s := LabelSkew(labels, [][]int{{-1, 9}, {}}); s != 0 {
		t.Errorf("invalid indices: skew %v, want 0", s)
	}
}

func FuzzPartition(f *testing.F) {
	for _, s := range []string{"iid", "dirichlet:0.5", "dirichlet:1e-300", "dirichlet:1e300", "dirichlet:0x1p-3", ":", "dirichlet:0.5:1"} {
		f.Add(s, 3, uint8(40))
	}
	f.Fuzz(func(t *testing.T, scheme string, sites int, n uint8) {
		if sites > 64 {
			sites %= 64 // bound the work per input
		}
		labels := balancedLabels(int(n), 3)
		p, err := Partition(labels, sites, scheme, 1)
		if err != nil {
			return
		}
		checkCoverage(t, p, len(labels))
	})
}
