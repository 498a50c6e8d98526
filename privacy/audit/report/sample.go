package report

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"time"
)

// Sample returns a realistic, unsigned report: three hospitals, ten rounds
// of record-level differential privacy, secure aggregation by multiparty
// homomorphic encryption with 2 of 3 sites needed to decrypt, and one site
// dropping out of round 4. Tests and documentation use it; its values are
// invented and deterministic.
func Sample() *Report {
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	sites := []Site{
		{Name: "st-marys", DataController: "St Mary's Hospital NHS Trust", Role: "site",
			Records:           RecordCounts{Patients: 4210, Studies: 5120, Images: 6034, Training: 4827, Validation: 1207, Excluded: 41},
			Deidentification:  "DICOM PS3.15 Annex E Basic Application Confidentiality Profile",
			CertificateSerial: "4f:1a:9c:22:e0:7b:31:05", CertificateExpiry: time.Date(2027, 9, 14, 0, 0, 0, 0, time.UTC)},
		{Name: "charite", DataController: "Charité – Universitätsmedizin Berlin", Role: "site",
			Records:           RecordCounts{Patients: 7893, Studies: 9310, Images: 11204, Training: 8963, Validation: 2241, Excluded: 117},
			Deidentification:  "DICOM PS3.15 Annex E Basic Application Confidentiality Profile with Retain Longitudinal Temporal Information Modified Dates Option",
			CertificateSerial: "7d:03:e8:51:aa:40:9f:6c", CertificateExpiry: time.Date(2027, 10, 1, 0, 0, 0, 0, time.UTC)},
		{Name: "northfield", DataController: "Northfield Regional Medical Center", Role: "site",
			Records:           RecordCounts{Patients: 1502, Studies: 1733, Images: 1988, Training: 1590, Validation: 398, Excluded: 6},
			Deidentification:  "DICOM PS3.15 Annex E Basic Application Confidentiality Profile",
			CertificateSerial: "12:b4:60:0d:f3:8e:25:c9", CertificateExpiry: time.Date(2027, 3, 30, 0, 0, 0, 0, time.UTC)},
	}
	budgets := []float64{8, 6, 10}
	before := []float64{1.2, 0, 2.5}
	const rounds, delta, dropSite, dropRound = 10, 1e-5, 2, 4

	r := &Report{
		Schema:      Schema,
		Consortium:  "European Chest Imaging Consortium",
		Subject:     Subject{JobID: "7", JobName: "pneumonia-cxr", ModelVersion: "v3"},
		GeneratedAt: time.Date(2026, 11, 27, 14, 30, 0, 0, time.UTC),
		GeneratedBy: "concord://auditor/dpo-office",
		Purpose:     "Train and validate a model that flags pneumonia on chest radiographs, for research into clinical decision support",
		LegalBasis:  "GDPR Art. 6(1)(e) and Art. 9(2)(j) (scientific research in the public interest, with safeguards under Art. 89(1)); HIPAA 45 CFR 164.514 de-identified data",
		Sites:       sites,
		Privacy: DP{
			Enabled: true, Level: LevelRecord,
			Mechanism:    "Gaussian mechanism on clipped per-example gradients (DP-SGD)",
			ClippingNorm: 1.0, NoiseMultiplier: 1.1, SamplingRate: 0.01,
			Accountant: "Rényi differential privacy accountant",
			Orders:     []float64{1.5, 2, 3, 4, 8, 16, 32, 64},
			Delta:      delta,
		},
		SecureAggregation: SecureAggregation{
			Enabled: true, Scheme: "mhe",
			ParameterSet: "CKKS logN=14, logQP=438 (lattigo v5)", SecurityBits: 128,
			Threshold: 2, Parties: 3,
		},
	}
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // invented sites' receipt key
	for i, s := range sites {
		b := SiteBudget{Site: s.Name, Level: LevelRecord, Budget: budgets[i], SpentBefore: before[i]}
		prev, rate := before[i], []float64{0.9, 1.1, 0.7}[i]
		for k := 1; k <= rounds; k++ {
			cum := prev
			if !(i == dropSite && k == dropRound) {
				// RDP composition grows about like sqrt(rounds).
				cum = before[i] + rate*(math.Sqrt(float64(k))+0.15*float64(k))
				if i == dropSite && k > dropRound {
					cum -= rate * (math.Sqrt(float64(dropRound)) - math.Sqrt(float64(dropRound-1)) + 0.15)
				}
			}
			cum = math.Round(cum*1000) / 1000
			eps := math.Round((cum-prev)*1000) / 1000
			b.Rounds = append(b.Rounds, RoundSpend{Round: k, Epsilon: eps, Cumulative: cum})
			prev = cum
			if eps == 0 {
				continue
			}
			upd := sha256.Sum256([]byte(fmt.Sprintf("update %s %d", s.Name, k)))
			rc := Receipt{Site: s.Name, Round: k, Level: LevelRecord, Epsilon: eps, Cumulative: cum, Delta: delta,
				UpdateHash: hex.EncodeToString(upd[:]),
				IssuedAt:   start.Add(time.Duration(k)*45*time.Minute + time.Duration(i)*time.Minute),
				KeyID:      "site:" + s.Name}
			msg := fmt.Sprintf("%s|%d|%s|%g|%g|%g|%s|%s", rc.Site, rc.Round, rc.Level, rc.Epsilon, rc.Cumulative, rc.Delta, rc.UpdateHash, rc.IssuedAt.Format(time.RFC3339))
			rc.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(msg)))
			r.Privacy.Receipts = append(r.Privacy.Receipts, rc)
		}
		r.Privacy.Sites = append(r.Privacy.Sites, b)
	}
	for k := 1; k <= rounds; k++ {
		ar := AggregationRound{Round: k, Expected: 3, Contributed: 3}
		if k == dropRound {
			ar.Contributed, ar.Dropped = 2, []string{sites[dropSite].Name}
		}
		r.SecureAggregation.Rounds = append(r.SecureAggregation.Rounds, ar)
	}
	end := start.Add(rounds*45*time.Minute + 20*time.Minute)
	r.Custody = []Event{
		{Action: ActionSubmitted, By: "concord://admin/a-novak", At: start.Add(-26 * time.Hour), Detail: "job spec pneumonia.yaml"},
		{Action: ActionApproved, By: "concord://site/st-marys", At: start.Add(-20 * time.Hour)},
		{Action: ActionApproved, By: "concord://site/charite", At: start.Add(-18 * time.Hour)},
		{Action: ActionApproved, By: "concord://site/northfield", At: start.Add(-3 * time.Hour)},
		{Action: ActionPublished, By: "concord://admin/a-novak", At: end.Add(2 * time.Hour), Detail: "model v3"},
		{Action: ActionExported, By: "concord://auditor/dpo-office", At: r.GeneratedAt, Detail: "this report"},
	}
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	r.Lineage = []ModelVersion{
		{Version: "v1", SHA256: hash("v1"), JobID: "3", SpecHash: hash("spec 3"), CodeVersion: "v0.8.2", CreatedAt: start.Add(-21 * 24 * time.Hour)},
		{Version: "v2", SHA256: hash("v2"), Parent: "v1", JobID: "5", SpecHash: hash("spec 5"), CodeVersion: "v0.9.0", CreatedAt: start.Add(-9 * 24 * time.Hour)},
		{Version: "v3", SHA256: hash("v3"), Parent: "v2", JobID: "7", SpecHash: hash("spec 7"), CodeVersion: "v0.9.1", CreatedAt: end},
	}
	r.HIPAA = HIPAATable(r)
	r.GDPR = GDPRRecordFor(r)
	root := sha256.Sum256([]byte("tree 1843"))
	rootB64 := base64.StdEncoding.EncodeToString(root[:])
	r.Checkpoint = Checkpoint{
		Origin:   "concord.example-consortium.eu/audit",
		TreeSize: 1843,
		RootHash: rootB64,
		Note: "concord.example-consortium.eu/audit\n1843\n" + rootB64 + "\n\n" +
			"— concord.example-consortium.eu/audit " + base64.StdEncoding.EncodeToString(ed25519.Sign(key, root[:])) + "\n",
		Witnesses: []Cosignature{
			{Name: "witness.st-marys", Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte("st-marys"+rootB64)))},
			{Name: "witness.charite", Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte("charite"+rootB64)))},
		},
	}
	return r
}
