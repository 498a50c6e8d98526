package coordinator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/audit/report"
	"github.com/concord-fl/concord/privacy/dp"
	"github.com/concord-fl/concord/privacy/he"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// deidProfile is what the site agent applies to every DICOM file it reads
// (package imaging).
const deidProfile = "DICOM PS3.15 Annex E Basic Application Confidentiality Profile, applied by the site agent"

// exportReport builds, signs with the audit key and renders a compliance
// report of a job from the coordinator's records and the audit log.
func (c *Coordinator) exportReport(jobID, format string, by Identity) ([]byte, string, error) {
	f := report.Format(format)
	if !slices.Contains([]report.Format{report.FormatJSON, report.FormatHTML, report.FormatPDF, report.FormatCSV}, f) {
		return nil, "", status.Errorf(codes.InvalidArgument, "format %s: use bundle, json, html, pdf or csv", q(format))
	}
	if jobID == "" {
		return nil, "", status.Error(codes.InvalidArgument, "a report is about one job or model version: give --job or --model")
	}
	t, err := c.auditTrust()
	if err != nil {
		return nil, "", err
	}
	c.freshCheckpoint(t, 5*time.Second)
	r, err := c.buildReport(jobID, by, t)
	if err != nil {
		return nil, "", err
	}
	k := c.cfg.AuditKey
	if err := report.Sign(r, k.PrivateKey(), k.ID()); err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	if err := report.Write(&buf, r, f); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), fmt.Sprintf("compliance-job-%s.%s", jobID, format), nil
}

func (c *Coordinator) buildReport(jobID string, by Identity, t *audit.Trust) (*report.Report, error) {
	c.mu.Lock()
	j := c.jobs[jobID]
	if j == nil {
		c.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "job %s does not exist", q(jobID))
	}
	spec := proto.Clone(j.spec).(*pb.JobSpec)
	rec := *j.rec
	rec.Rounds = slices.Clone(j.rec.Rounds)
	// The secure state changes while a job runs: copy what the report
	// reads under the lock.
	rec.Secure = cloneSecure(j.rec.Secure)
	var sites []string
	for s := range j.rec.Sites {
		sites = append(sites, s)
	}
	examples := map[string]int{}
	var alarms []report.WitnessAlarm
	for _, s := range sites {
		if r := c.sites[s]; r != nil {
			examples[s] = int(r.Examples)
			if a := r.WitnessAlarm; a != nil {
				alarms = append(alarms, report.WitnessAlarm{Site: s, Time: a.Time, Reason: a.Reason, Size: a.Size,
					CheckpointSHA256: hex.EncodeToString(a.CheckpointSHA256[:])})
			}
		}
	}
	c.mu.Unlock()
	slices.Sort(sites)

	r := &report.Report{Schema: report.Schema, Consortium: c.cfg.Consortium,
		Subject:     report.Subject{JobID: jobID, JobName: spec.Name, ModelVersion: rec.ModelVersion},
		GeneratedAt: c.now().UTC(), GeneratedBy: by.String(),
		Purpose:    orPlaceholder(spec.GetPurpose(), "the purpose of the processing (job spec: purpose)"),
		LegalBasis: orPlaceholder(spec.GetLegalBasis(), "the legal basis of the processing (job spec: legal_basis)")}
	inv := c.inventory()
	for _, s := range sites {
		site := report.Site{Name: s, Role: string(pki.RoleSite),
			DataController:   report.ToComplete("the data controller of " + s),
			Records:          report.RecordCounts{Training: examples[s], Images: examples[s]},
			Deidentification: deidProfile}
		if inv != nil {
			if act := inv.Active(pki.RoleSite, s, c.now()); len(act) > 0 {
				e := act[len(act)-1]
				site.CertificateSerial, site.CertificateExpiry = e.Serial, e.NotAfter
			}
		}
		r.Sites = append(r.Sites, site)
	}
	p := spec.GetPrivacy()
	if p.GetLevel() == "record" {
		r.Privacy = report.DP{Enabled: true, Level: report.LevelRecord,
			Mechanism:    "Gaussian mechanism on clipped per-example gradients (DP-SGD), Poisson sampling at each site",
			ClippingNorm: p.GetExampleClip(), NoiseMultiplier: p.GetNoiseMultiplier(), Delta: p.GetDelta(),
			Accountant: "Rényi DP, Poisson-subsampled Gaussian (" + dp.AccountantVersion + ")", Orders: dp.DefaultOrders()}
	}
	if sdp, err := jobspec.SiteDPConfig(spec); err == nil && sdp != nil {
		mech := fmt.Sprintf("Gaussian mechanism on each site's update clipped to %g, the noise shared among the sites (each adds std z·C/sqrt(%d)), "+
			"so that the sum of at least min_sites %d updates carries noise multiplier z; unweighted mean; every site in each round (q = 1). "+
			"The contributors of each round are listed under aggregation", sdp.Clip, sdp.MinSites, sdp.MinSites)
		if sdp.Adaptive() {
			mech += fmt.Sprintf("; adaptive clipping (quantile %g, learning rate %g, count noise %g): the update's share of z is %.4g",
				sdp.Quantile, sdp.ClipLR, sdp.CountNoise, sdp.UpdateNoiseMultiplier)
		}
		r.Privacy = report.DP{Enabled: true, Level: report.LevelSite, Mechanism: mech, ClippingNorm: sdp.Clip,
			NoiseMultiplier: sdp.NoiseMultiplier, SamplingRate: 1, Delta: sdp.Delta,
			Accountant: "Rényi DP, Gaussian mechanism, q = 1 (" + dp.AccountantVersion + ")", Orders: dp.DefaultOrders()}
	}
	if r.Privacy.Enabled {
		if err := c.fillReceipts(r, jobID); err != nil {
			return nil, err
		}
	}
	if rec.Secure != nil {
		sa := report.SecureAggregation{Enabled: true, Scheme: "mhe", ParameterSet: rec.Secure.ParamSet,
			Threshold: rec.Secure.heJob(rec.ID).Threshold, Parties: len(rec.Secure.Points)}
		if ps, err := he.Lookup(rec.Secure.ParamSet); err == nil {
			sa.SecurityBits = ps.SecurityBits
		}
		r.SecureAggregation = sa
	}
	for _, rs := range rec.Rounds {
		ar := report.AggregationRound{Round: rs.Round, Expected: len(rs.Participants), Contributed: len(rs.Contributors)}
		for _, s := range rs.Participants {
			if !slices.Contains(rs.Contributors, s) {
				ar.Dropped = append(ar.Dropped, s)
			}
		}
		r.SecureAggregation.Rounds = append(r.SecureAggregation.Rounds, ar)
	}
	r.Custody = append(r.Custody, report.Event{Action: report.ActionSubmitted, By: rec.SubmittedBy, At: rec.Created})
	evs, _, err := c.bus.events(jobID, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		switch e.Kind {
		case EvModelPublished:
			r.Custody = append(r.Custody, report.Event{Action: report.ActionPublished, By: e.Actor, At: e.Time, Detail: e.Detail})
		case EvAuditExported:
			r.Custody = append(r.Custody, report.Event{Action: report.ActionExported, By: e.Actor, At: e.Time, Detail: e.Detail})
		}
	}
	r.Custody = append(r.Custody, report.Event{Action: report.ActionExported, By: by.String(), At: r.GeneratedAt, Detail: "this report"})
	mvs, _, err := c.models(jobID)
	if err != nil {
		return nil, err
	}
	specSum := sha256.Sum256(rec.Spec)
	for _, mv := range mvs {
		r.Lineage = append(r.Lineage, report.ModelVersion{Version: mv.Version, SHA256: mv.Sha256, Parent: mv.Parent, JobID: mv.JobId,
			SpecHash: hex.EncodeToString(specSum[:]), CodeVersion: "concord " + Version, CreatedAt: timeUnix(mv.CreatedUnix)})
	}
	r.HIPAA = report.HIPAATable(r)
	r.GDPR = report.GDPRRecordFor(r)
	signed, err := c.bus.alog.Latest()
	if err != nil || signed == nil {
		return nil, fmt.Errorf("no audit checkpoint to build the report from: %v", err)
	}
	cp, cosigners, err := audit.OpenCheckpoint(signed, t)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	r.Checkpoint = report.Checkpoint{Origin: cp.Origin, TreeSize: cp.Size, RootHash: hex.EncodeToString(cp.Root), Note: string(signed)}
	slices.SortFunc(alarms, func(a, b report.WitnessAlarm) int { return strings.Compare(a.Site, b.Site) })
	r.Checkpoint.Alarms = alarms
	for _, line := range strings.Split(string(signed), "\n") {
		name, sig, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		if !ok || !strings.HasPrefix(line, "— ") {
			continue
		}
		for _, id := range cosigners {
			if strings.HasPrefix(id, name+"+") {
				r.Checkpoint.Witnesses = append(r.Checkpoint.Witnesses, report.Cosignature{Name: name, Signature: sig})
			}
		}
	}
	return r, nil
}

func timeUnix(s int64) time.Time { return time.Unix(s, 0).UTC() }

func orPlaceholder(s, what string) string {
	if s == "" {
		return report.ToComplete(what)
	}
	return s
}

// fillReceipts adds the job's countersigned privacy receipts and each
// site's epsilon, round by round, against its budget.
func (c *Coordinator) fillReceipts(r *report.Report, jobID string) error {
	all, err := c.receipts(jobID)
	if err != nil {
		return err
	}
	bySite := map[string]*report.SiteBudget{}
	var order []string
	for _, data := range all {
		rc, err := dp.ParseReceipt(data)
		if err != nil {
			continue
		}
		roundEps, err := dp.Spent(rc.NoiseMultiplier, rc.SampleRate, rc.Steps, rc.Budget.Delta)
		if err != nil {
			roundEps = 0
		}
		sb := bySite[rc.Site]
		if sb == nil {
			sb = &report.SiteBudget{Site: rc.Site, Level: report.Level(rc.Level), Budget: rc.Budget.Epsilon,
				SpentBefore: math.Max(0, rc.EpsilonSpent-roundEps)}
			bySite[rc.Site] = sb
			order = append(order, rc.Site)
		} else if n := len(sb.Rounds); n > 0 {
			roundEps = math.Max(0, rc.EpsilonSpent-sb.Rounds[n-1].Cumulative)
		}
		sb.Rounds = append(sb.Rounds, report.RoundSpend{Round: rc.Round, Epsilon: roundEps, Cumulative: rc.EpsilonSpent})
		if r.Privacy.NoiseMultiplier == 0 {
			r.Privacy.NoiseMultiplier = rc.NoiseMultiplier
		}
		if r.Privacy.SamplingRate == 0 {
			r.Privacy.SamplingRate = rc.SampleRate
		}
		sum := sha256.Sum256(data)
		r.Privacy.Receipts = append(r.Privacy.Receipts, report.Receipt{Site: rc.Site, Round: rc.Round, Level: report.Level(rc.Level),
			Epsilon: roundEps, Cumulative: rc.EpsilonSpent, Delta: rc.Delta, UpdateHash: rc.UploadSHA256, IssuedAt: rc.Time,
			KeyID: "site certificate; countersigned by " + c.cfg.AuditKey.ID(), Signature: "sha256:" + hex.EncodeToString(sum[:])})
	}
	slices.Sort(order)
	for _, s := range order {
		r.Privacy.Sites = append(r.Privacy.Sites, *bySite[s])
	}
	return nil
}
