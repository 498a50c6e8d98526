package coordinator

import (
	"context"
	"crypto"
	"encoding/hex"
	"fmt"
	"math"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Privacy receipts. A site running a job with record-level differential
// privacy signs, with its certificate's key, a receipt of what it ran
// (noise, sampling rate, steps, delta, its epsilon so far and its budget)
// for each update. The coordinator checks the receipt against the site's
// client certificate and the upload before accepting a chunk, countersigns
// it with its audit key when the upload completes, keeps it, records it in
// the audit log and returns it to the site, so both hold proof of what was
// released.

// peerKey is the public key of the caller's verified client certificate.
func peerKey(ctx context.Context) crypto.PublicKey {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0].PublicKey
}

// checkReceipt refuses an update of a DP job without a valid receipt for
// exactly this upload, and a receipt on a job without DP.
func checkReceipt(j *job, site string, pub crypto.PublicKey, h *pb.UploadHeader) error {
	p := j.spec.GetPrivacy()
	level := dp.Level(p.GetLevel())
	if level != dp.Record && level != dp.Site {
		if len(h.PrivacyReceipt) > 0 {
			return fmt.Errorf("this job does not use differential privacy: send no privacy receipt")
		}
		return nil
	}
	if len(h.PrivacyReceipt) == 0 {
		return fmt.Errorf("this job uses %s-level differential privacy: an update must carry the site's signed privacy receipt", level)
	}
	if len(h.PrivacyReceipt) > 16<<10 {
		return fmt.Errorf("privacy receipt of %d bytes: at most 16 KiB", len(h.PrivacyReceipt))
	}
	if pub == nil {
		return fmt.Errorf("no client certificate to check the privacy receipt against")
	}
	r, err := dp.VerifyReceipt(h.PrivacyReceipt, pub)
	if err != nil {
		return err
	}
	var problems []string
	if r.Site != site {
		problems = append(problems, fmt.Sprintf("names site %s", q(r.Site)))
	}
	if r.JobID != j.rec.ID || r.Round != int(h.Round) {
		problems = append(problems, fmt.Sprintf("is for job %s round %d", q(r.JobID), r.Round))
	}
	if r.UploadSHA256 != hex.EncodeToString(h.Sha256) {
		problems = append(problems, "names another upload (sha256)")
	}
	if r.Level != level {
		problems = append(problems, fmt.Sprintf("is for level %s, the job's is %s", q(string(r.Level)), level))
	}
	if level == dp.Site {
		problems = append(problems, siteReceiptProblems(j, r)...)
	} else if s := p.GetNoiseMultiplier(); s > 0 && math.Abs(r.NoiseMultiplier-s) > 1e-9*s {
		problems = append(problems, fmt.Sprintf("declares noise multiplier %g, the job's is %g", r.NoiseMultiplier, s))
	}
	if r.NoiseMultiplier <= 0 || r.Steps <= 0 || r.SampleRate <= 0 || r.SampleRate > 1 {
		problems = append(problems, "declares no noise, no steps or an impossible sampling rate")
	}
	if d := p.GetDelta(); d > 0 && r.Delta != d {
		problems = append(problems, fmt.Sprintf("declares delta %g, the job's is %g", r.Delta, d))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the privacy receipt %s", strings.Join(problems, "; "))
	}
	return nil
}

func receiptKey(jobID string, r int, site string) string {
	return fmt.Sprintf("%s/%08d/%s", jobID, r, site)
}

// receiptDetail summarises a receipt for the audit log.
func receiptDetail(data []byte) string {
	r, err := dp.ParseReceipt(data)
	if err != nil {
		return "privacy receipt countersigned"
	}
	return fmt.Sprintf("privacy receipt of %s, round %d: %s, noise multiplier %g, sample rate %g, %d steps, delta %g; epsilon %.4g of budget %.4g (%s)",
		r.Site, r.Round, r.Mechanism, r.NoiseMultiplier, r.SampleRate, r.Steps, r.Delta, r.EpsilonSpent, r.Budget.Epsilon, r.Accountant)
}

// receipts returns a job's countersigned receipts, in round then site order.
func (c *Coordinator) receipts(jobID string) ([][]byte, error) {
	var out [][]byte
	prefix := []byte(jobID + "/")
	err := c.st.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bReceipts).Cursor()
		for k, v := cur.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = cur.Next() {
			out = append(out, append([]byte(nil), v...))
		}
		return nil
	})
	return out, err
}
