package report

import (
	"fmt"
	"slices"
	"strings"
)

// placeholderPrefix starts every answer only a hospital can give. Renderers
// highlight it, and [Placeholders] lists where it remains.
const placeholderPrefix = "[TO BE COMPLETED BY THE HOSPITAL: "

// ToComplete is a placeholder for an answer only the hospital can give,
// e.g. ToComplete("DPO contact of St Mary's").
func ToComplete(what string) string { return placeholderPrefix + what + "]" }

// IsPlaceholder reports whether s is (or starts with) a [ToComplete]
// placeholder.
func IsPlaceholder(s string) bool { return strings.HasPrefix(s, placeholderPrefix) }

// Placeholders lists, by field, the GDPR answers still left to the
// hospitals, so a compliance officer knows what to complete before filing.
func Placeholders(r *Report) []string {
	var out []string
	add := func(field, v string) {
		if IsPlaceholder(v) {
			out = append(out, field+": "+strings.TrimSuffix(strings.TrimPrefix(v, placeholderPrefix), "]"))
		}
	}
	g := r.GDPR
	for _, c := range g.Controllers {
		add("Art. 30(1)(a) "+c.Name+" contact", c.Contact)
		add("Art. 30(1)(a) "+c.Name+" DPO", c.DPOContact)
	}
	for _, list := range []struct {
		field string
		vs    []string
	}{
		{"Art. 30(1)(b)", g.Purposes},
		{"Art. 30(1)(c) data subjects", g.DataSubjects},
		{"Art. 30(1)(c) personal data", g.PersonalData},
		{"Art. 30(1)(d)", g.Recipients},
		{"Art. 30(1)(g)", g.SecurityMeasures},
	} {
		for _, v := range list.vs {
			add(list.field, v)
		}
	}
	add("Art. 30(1)(e)", g.ThirdCountryTransfers)
	add("Art. 30(1)(f)", g.ErasureTimeLimits)
	return out
}

// HIPAATable states, for each standard of the HIPAA Security Rule
// §164.312 (technical safeguards), what Concord does in this job and what
// stays the hospital's duty. The text follows the report: a job without
// secure aggregation or differential privacy is described as such.
func HIPAATable(r *Report) []HIPAAControl {
	sa := r.SecureAggregation
	var agg string
	if sa.Enabled {
		agg = fmt.Sprintf("Model updates are encrypted at the site with multiparty homomorphic encryption (%s, %d-bit security) and summed while encrypted; "+
			"decrypting the sum needs %d of the %d sites, and no party, the coordinator included, can decrypt one site's update. ",
			sa.ParameterSet, sa.SecurityBits, sa.Threshold, sa.Parties)
	} else {
		agg = "Secure aggregation was OFF for this job (recorded in the audit log): the coordinator could read each site's model update. "
	}
	return []HIPAAControl{
		{
			Section:  "§164.312(a)",
			Standard: "Access control",
			Concord: "Every connection to the coordinator uses mutual TLS 1.3 with certificates issued by the consortium's own certificate authority. " +
				"Each certificate names one role (site, admin, auditor, coordinator) and every remote call is checked against that role; " +
				"a revoked certificate is refused without restarting the coordinator. Medical images never leave the hospital: " +
				"the site agent reads them locally and sends only model updates.",
			Hospital: "Control who can log in to the site-agent host and read the PACS export; keep the site's private key readable only by the agent's service account; " +
				"ask the consortium admin to revoke the certificate when the host or a person leaves; emergency access and automatic logoff on local workstations.",
		},
		{
			Section:  "§164.312(b)",
			Standard: "Audit controls",
			Concord: "Every job submission, approval, round, privacy receipt, publication and export is written to an append-only, hash-chained audit log organised as a Merkle tree. " +
				"Signed checkpoints of the log are cosigned by witnesses at the sites, so the coordinator cannot rewrite history without the sites noticing; " +
				"this report names the checkpoint it was built from.",
			Hospital: "Ship the site agent's logs (structured, without patient identifiers) to the hospital's SIEM and review them; keep local access logs of the PACS and the agent host; " +
				"run `concordctl audit verify` on the audit log you receive.",
		},
		{
			Section:  "§164.312(c)",
			Standard: "Integrity",
			Concord: "Audit entries, privacy receipts, checkpoints and this report are signed with Ed25519; every model version is identified by its SHA-256 and its parent, job specification hash and code version (the lineage table). " +
				"Any change to this report after signing makes its signature fail.",
			Hospital: "Protect the integrity of the source images and the de-identified export (storage permissions, backups); verify the report's signature before filing it.",
		},
		{
			Section:  "§164.312(d)",
			Standard: "Person or entity authentication",
			Concord: "Sites, administrators, auditors and the coordinator authenticate with X.509 certificates (ECDSA P-256) from the consortium CA, valid one year by default; " +
				"the report lists each site's certificate serial and expiry, and each action in the chain of custody names the certificate identity that performed it.",
			Hospital: "Verify the identity of staff who receive a site's startup kit; authenticate people on the agent host (single sign-on, multi-factor authentication); renew the certificate before it expires.",
		},
		{
			Section:  "§164.312(e)",
			Standard: "Transmission security",
			Concord: "All traffic is TLS 1.3 with mutual authentication and only outbound connections from the hospital. " + agg +
				"Images are de-identified at the site before training and are never transmitted.",
			Hospital: "Allow only the agent's outbound connection to the coordinator through the firewall or proxy; do not send images or exports to the consortium by other channels.",
		},
	}
}

// GDPRRecordFor builds the GDPR Art. 30(1) record of processing from the
// report: what Concord knows is filled in, what only a hospital can answer
// is a [ToComplete] placeholder.
func GDPRRecordFor(r *Report) GDPRRecord {
	var g GDPRRecord
	for _, s := range r.Sites {
		g.Controllers = append(g.Controllers, Controller{
			Name:       s.DataController,
			Role:       "joint controller (site " + s.Name + ")",
			Contact:    ToComplete("postal address and contact of " + s.DataController),
			DPOContact: ToComplete("data protection officer of " + s.DataController),
		})
	}
	g.Purposes = []string{r.Purpose, "Legal basis: " + r.LegalBasis}
	g.DataSubjects = []string{
		"Patients whose medical images the sites selected for this study",
		ToComplete("inclusion criteria of the cohort at each site"),
	}
	g.PersonalData = []string{
		"Medical images (DICOM) de-identified at the site: " + profiles(r.Sites),
		"Health data within the meaning of GDPR Art. 9 (imaging findings and labels)",
		"Images, labels and identifiers stay at the site; only model updates leave it",
	}
	g.Recipients = []string{
		"The consortium coordinator (" + r.Consortium + "): receives model updates only, " + aggregationClause(r.SecureAggregation),
		"Member sites of the consortium: receive the trained model",
		ToComplete("other recipients of the trained model, e.g. the hospital's clinical systems"),
	}
	g.ThirdCountryTransfers = ToComplete("location of the coordinator and of each site, and the safeguards of any transfer outside the EEA")
	g.ErasureTimeLimits = ToComplete("retention period of the de-identified export at each site; the audit log is kept for the consortium's retention period")
	g.SecurityMeasures = []string{
		"Mutual TLS 1.3 with a consortium certificate authority; role-based access per certificate; revocation",
		"Images never leave the site; de-identification at the site before training",
		aggregationMeasure(r.SecureAggregation),
		dpMeasure(r.Privacy),
		"Hash-chained, Merkle-tree audit log with signed checkpoints cosigned by witnesses; Ed25519 signatures on receipts and reports",
		ToComplete("the site's own organisational measures (staff training, access reviews, incident response)"),
	}
	return g
}

func profiles(sites []Site) string {
	var ps []string
	for _, s := range sites {
		if s.Deidentification != "" && !slices.Contains(ps, s.Deidentification) {
			ps = append(ps, s.Deidentification)
		}
	}
	if len(ps) == 0 {
		return ToComplete("de-identification profile")
	}
	return strings.Join(ps, "; ")
}

func aggregationClause(sa SecureAggregation) string {
	if sa.Enabled {
		return "encrypted so that it cannot read any one site's update"
	}
	return "unencrypted (secure aggregation was off)"
}

func aggregationMeasure(sa SecureAggregation) string {
	if !sa.Enabled {
		return "Secure aggregation: OFF for this job"
	}
	return fmt.Sprintf("Secure aggregation by multiparty homomorphic encryption (%s, %d-bit security, %d of %d sites needed to decrypt)",
		sa.ParameterSet, sa.SecurityBits, sa.Threshold, sa.Parties)
}

func dpMeasure(dp DP) string {
	if !dp.Enabled {
		return "Differential privacy: OFF for this job"
	}
	return fmt.Sprintf("Differential privacy at %s level (%s, delta %g) with a per-site epsilon budget", dp.Level, dp.Mechanism, dp.Delta)
}
