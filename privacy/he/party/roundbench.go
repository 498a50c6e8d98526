package party

// RoundBench measures a whole secure-aggregation round (key setup,
// encryption at every site, streaming aggregation, threshold decryption)
// next to the same round in plaintext, on one machine, with real lattigo and
// no network: the figures of concord-bench he. Sites run one after another
// on one goroutine, so per-site figures are one-core figures; round times
// count sites as running in parallel (the slowest site's encryption, then
// the coordinator, then the slowest committee member's shares and the
// combination).

import (
	"crypto/rand"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"time"

	"github.com/concord-fl/concord/privacy/he"
)

// RoundReport is one configuration's figures; the JSON line of concord-bench he --json.
type RoundReport struct {
	ParamSet  string `json:"param_set"`
	Params    int    `json:"params"`
	Sites     int    `json:"sites"`
	Threshold int    `json:"threshold"`

	BytesPerParam          float64 `json:"bytes_per_param"`
	UploadBytesPerSite     int64   `json:"upload_bytes_per_site"`
	DownloadBytesPerSite   int64   `json:"download_bytes_per_site"`
	ShareBytesPerMember    int64   `json:"share_bytes_per_committee_member"`
	SetupUploadBytesSite   int64   `json:"setup_upload_bytes_per_site"`
	SetupDownloadBytesSite int64   `json:"setup_download_bytes_per_site"`

	SetupSeconds          float64 `json:"setup_seconds"`
	EncryptSecondsPerSite float64 `json:"encrypt_seconds_per_site"`
	EncryptSecondsMax     float64 `json:"encrypt_seconds_max"`
	AggregateSeconds      float64 `json:"aggregate_seconds"`
	ShareSecondsPerMember float64 `json:"share_seconds_per_member"`
	CombineSeconds        float64 `json:"combine_seconds"`
	DecryptSeconds        float64 `json:"decrypt_seconds"`

	CoordinatorPeakBytes int64   `json:"coordinator_peak_bytes"`
	ProcessPeakHeapBytes int64   `json:"process_peak_heap_bytes"`
	MaxAbsError          float64 `json:"max_abs_error"`
	ErrorBound           float64 `json:"error_bound"`

	PlaintextRoundSeconds float64 `json:"plaintext_round_seconds"`
	HERoundSeconds        float64 `json:"he_round_seconds"`
	HEOverheadSeconds     float64 `json:"he_overhead_seconds"`
	GoMaxProcs            int     `json:"gomaxprocs"`
}

// heapPeak tracks the largest live heap (after a collection) at the sampling points:
// the whole simulated federation, sites' keys and plaintext reference included.
type heapPeak struct{ max uint64 }

func (h *heapPeak) sample() {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	if m.HeapAlloc > h.max {
		h.max = m.HeapAlloc
	}
}

// RoundBench measures one round of numValues values over sites sites with threshold t.
func RoundBench(ps he.ParamSet, numValues, sites, t int) (RoundReport, error) {
	r := RoundReport{ParamSet: ps.Name, Params: numValues, Sites: sites, Threshold: t, GoMaxProcs: runtime.GOMAXPROCS(0)}
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return r, err
	}
	job := he.Job{ID: "bench", CRSSeed: seed, Sites: sites, Threshold: t}
	var peak heapPeak

	// Key setup, relayed as bytes.
	start := time.Now()
	parties := make([]*Party, sites+1)
	pubs := map[int][]byte{}
	for i := 1; i <= sites; i++ {
		p, err := New(ps, job, i, rand.Reader)
		if err != nil {
			return r, err
		}
		parties[i] = p
		pubs[i] = p.ExchangePublicKey()
	}
	inbox := make([]map[int][]byte, sites+1)
	for i := range inbox {
		inbox[i] = map[int][]byte{}
	}
	for i := 1; i <= sites; i++ {
		out, err := parties[i].ShamirSharesFor(pubs)
		if err != nil {
			return r, err
		}
		for to, b := range out {
			inbox[to][i] = b
			r.SetupUploadBytesSite += int64(len(b))
		}
	}
	for i := 1; i <= sites; i++ {
		for _, b := range inbox[i] {
			r.SetupDownloadBytesSite += int64(len(b))
		}
		if err := parties[i].ReceiveShamirShares(inbox[i], pubs); err != nil {
			return r, err
		}
	}
	r.SetupSeconds = time.Since(start).Seconds()
	r.SetupUploadBytesSite = r.SetupUploadBytesSite/int64(sites) + 32
	r.SetupDownloadBytesSite = r.SetupDownloadBytesSite/int64(sites) + int64(32*(sites-1))

	// One round: every site encrypts, the coordinator adds as chunks arrive. The plaintext
	// round (weighting at the site, sum at the coordinator) runs on the same data.
	const round = 1
	agg, err := he.NewAggregate(ps, job, round, numValues)
	if err != nil {
		return r, err
	}
	plainSum := make([]float64, numValues)
	var plainW, plainSiteMax, plainCoord float64
	weighted := make([]float64, numValues)
	update := make([]float32, numValues)
	var encTotal, aggTotal time.Duration
	for i := 1; i <= sites; i++ {
		rng := mrand.New(mrand.NewPCG(uint64(i), 42))
		for k := range update {
			update[k] = float32(rng.NormFloat64() * 0.05)
		}
		w := float64(50 + rng.IntN(1000))

		t0 := time.Now()
		for k, u := range update {
			weighted[k] = w * float64(u)
		}
		plainSiteMax = math.Max(plainSiteMax, time.Since(t0).Seconds())
		t0 = time.Now()
		for k, v := range weighted {
			plainSum[k] += v
		}
		plainW += w
		plainCoord += time.Since(t0).Seconds()

		t0 = time.Now()
		cts, err := parties[i].Encrypt(round, update, w)
		if err != nil {
			return r, err
		}
		d := time.Since(t0)
		encTotal += d
		r.EncryptSecondsMax = math.Max(r.EncryptSecondsMax, d.Seconds())
		var up int64
		t0 = time.Now()
		for _, ct := range cts {
			up += int64(len(ct))
			if err := agg.Add(i, ct); err != nil {
				return r, err
			}
		}
		aggTotal += time.Since(t0)
		r.UploadBytesPerSite = up
		peak.sample()
	}
	t0 := time.Now()
	plainMean := make([]float64, numValues)
	for k, v := range plainSum {
		plainMean[k] = v / plainW
	}
	plainCoord += time.Since(t0).Seconds()
	r.PlaintextRoundSeconds = plainSiteMax + plainCoord
	r.EncryptSecondsPerSite = encTotal.Seconds() / float64(sites)
	r.AggregateSeconds = aggTotal.Seconds()
	r.BytesPerParam = float64(r.UploadBytesPerSite) / float64(numValues)

	// Close the round: the first t sites form the committee.
	all := make([]int, sites)
	for i := range all {
		all[i] = i + 1
	}
	req, err := agg.DecryptionRequest(all)
	if err != nil {
		return r, err
	}
	reqBytes, _ := req.MarshalBinary()
	r.DownloadBytesPerSite = int64(len(reqBytes))
	dec, err := agg.NewDecryption(req)
	if err != nil {
		return r, err
	}
	var shareMax, combine time.Duration
	for _, pt := range req.Committee {
		t0 := time.Now()
		shares, err := parties[pt].DecryptionShares(req)
		if err != nil {
			return r, err
		}
		shareMax = max(shareMax, time.Since(t0))
		r.ShareBytesPerMember = 0
		t0 = time.Now()
		for _, s := range shares {
			r.ShareBytesPerMember += int64(len(s))
			if err := dec.AddShare(pt, s); err != nil {
				return r, err
			}
		}
		combine += time.Since(t0)
		peak.sample()
	}
	t0 = time.Now()
	res, err := dec.Result()
	if err != nil {
		return r, err
	}
	mean, err := res.Mean()
	if err != nil {
		return r, err
	}
	combine += time.Since(t0)
	peak.sample()
	r.ShareSecondsPerMember = shareMax.Seconds()
	r.CombineSeconds = combine.Seconds()
	r.DecryptSeconds = r.ShareSecondsPerMember + r.CombineSeconds
	maxMean := 0.0
	for k := range mean {
		r.MaxAbsError = math.Max(r.MaxAbsError, math.Abs(mean[k]-plainMean[k]))
		maxMean = math.Max(maxMean, math.Abs(plainMean[k]))
	}
	// S/W with |error(S)|, |error(W)| <= E is off by at most E(1+|S/W|)/(W-E).
	e := ps.ErrorBound(sites, t)
	r.ErrorBound = e * (1 + maxMean) / (plainW - e)
	// The coordinator retains the encrypted sum, the sum of shares, and the decrypted
	// vector; everything else it touches is one chunk at a time.
	r.CoordinatorPeakBytes = int64(agg.StateBytes())*2 + int64(8*req.Ciphertexts*ps.ValuesPerCiphertext)
	r.ProcessPeakHeapBytes = int64(peak.max)
	r.HERoundSeconds = r.EncryptSecondsMax + r.AggregateSeconds + r.DecryptSeconds
	r.HEOverheadSeconds = r.HERoundSeconds - r.PlaintextRoundSeconds
	return r, nil
}
