package party_test

import (
	"crypto/rand"
	"fmt"

	"github.com/concord-fl/concord/privacy/he"
	"github.com/concord-fl/concord/privacy/he/party"
)

// A whole job of three hospitals, threshold two, as the coordinator and the site agents
// run it; every value that crosses the network is a []byte.
func Example() {
	ps, _ := he.Lookup(he.Default)
	seed := make([]byte, 32)
	_, _ = rand.Read(seed) // fixed in the job spec when the job is created
	job := he.Job{ID: "pneumonia-7", CRSSeed: seed, Sites: 3, Threshold: 2}

	// Key setup: exchange keys, then Shamir shares sealed to their receivers.
	sites := map[int]*party.Party{}
	pubs := map[int][]byte{}
	for pt := 1; pt <= 3; pt++ {
		sites[pt], _ = party.New(ps, job, pt, rand.Reader)
		pubs[pt] = sites[pt].ExchangePublicKey()
	}
	inbox := map[int]map[int][]byte{1: {}, 2: {}, 3: {}}
	for from, p := range sites {
		sealed, _ := p.ShamirSharesFor(pubs)
		for to, b := range sealed {
			inbox[to][from] = b // relayed by the coordinator, unreadable to it
		}
	}
	for pt, p := range sites {
		if err := p.ReceiveShamirShares(inbox[pt], pubs); err != nil {
			fmt.Println(err)
		}
	}

	// Round 1: sites 1 and 2 train (site 3 is down); the coordinator adds chunks.
	agg, _ := he.NewAggregate(ps, job, 1, 4)
	updates := map[int][]float32{1: {0.1, 0.2, 0.3, 0.4}, 2: {0.3, 0.2, 0.1, 0.0}}
	weights := map[int]float64{1: 100, 2: 300}
	for pt, u := range updates {
		chunks, _ := sites[pt].Encrypt(1, u, weights[pt])
		for _, c := range chunks {
			if err := agg.Add(pt, c); err != nil {
				fmt.Println(err)
			}
		}
	}

	// Close the round with whoever is reachable; the committee sends shares.
	req, err := agg.DecryptionRequest([]int{1, 2})
	if err != nil {
		fmt.Println("abort:", err)
		return
	}
	dec, _ := agg.NewDecryption(req)
	for _, pt := range req.Committee {
		shares, _ := sites[pt].DecryptionShares(req)
		for _, s := range shares {
			_ = dec.AddShare(pt, s)
		}
	}
	res, _ := dec.Result()
	mean, _ := res.Mean()
	fmt.Printf("contributors %v, total weight %.3f\n", res.Contributors, res.TotalWeight)
	fmt.Printf("mean %.4f %.4f %.4f %.4f\n", mean[0], mean[1], mean[2], mean[3])
	fmt.Printf("upload %d bytes per site\n", he.CiphertextsFor(ps, 4)*ps.CiphertextBytes)
	// Output:
	// contributors [1 2], total weight 400.000
	// mean 0.2500 0.2000 0.1500 0.1000
	// upload 30762 bytes per site
}
