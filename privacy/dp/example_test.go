package dp_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
)

// A site's round of record-level DP-SGD, in the order the package doc
// gives: check, train, check the sampling, charge after the upload.
func Example() {
	ledger, _ := dp.NewLedger(dp.Budget{Level: dp.Record, Epsilon: 2.5, Delta: 1e-5})
	ds := separable(100, 1)
	const rate, sigma, steps = 0.1, 2.0, 20
	planned := dp.Gaussian{NoiseMultiplier: sigma, SampleRate: rate, Steps: steps}

	for round := 1; round <= 6; round++ {
		if err := ledger.Check(planned); errors.Is(err, dp.ErrBudgetExceeded) {
			fmt.Printf("round %d refused\n", round)
			break
		}
		m, _ := learning.New(spec, 1)
		// Tests seed their sources; a site uses dp.NewSecureSource().
		hook := &dp.SGD{Clip: 1, NoiseMultiplier: sigma, Source: rand.New(rand.NewPCG(1, uint64(round)))}
		res, err := m.Train(context.Background(), ds, learning.TrainConfig{Steps: steps, SampleRate: rate,
			PerExample: hook, Sampler: rand.New(rand.NewPCG(2, uint64(round)))})
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := dp.CheckSampling(res.Samples, ds.N, res.Steps, rate); err != nil {
			fmt.Println(err)
			return
		}
		upload := sha256.Sum256([]byte(fmt.Sprint(m.Weights()))) // the bytes that left the site
		// ... upload accepted by the coordinator ...
		err = ledger.Charge(dp.Entry{JobID: "7", Round: round, Level: dp.Record, Mechanism: dp.MechanismSubsampledGaussian,
			NoiseMultiplier: sigma, SampleRate: rate, Steps: res.Steps, Delta: 1e-5,
			Accountant: dp.AccountantVersion, Time: time.Now(), UploadSHA256: hex.EncodeToString(upload[:])})
		if err != nil {
			fmt.Println(err)
			return
		}
		eps, _ := ledger.Spent()
		fmt.Printf("round %d: epsilon spent %.2f of 2.5\n", round, eps)
	}
	// Output:
	// round 1: epsilon spent 1.23 of 2.5
	// round 2: epsilon spent 1.66 of 2.5
	// round 3: epsilon spent 2.01 of 2.5
	// round 4: epsilon spent 2.31 of 2.5
	// round 5 refused
}
