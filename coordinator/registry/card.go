package registry

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/concord-fl/concord/evaluation"
)

// CardDoc is the model card as data (card.json): what the version is for,
// what it was trained and validated on, how well it did, where it falls
// short and where it came from. Everything in it derives from the manifest.
type CardDoc struct {
	Format      string             `json:"format"`
	Name        string             `json:"name"`
	Version     string             `json:"version"`
	Status      string             `json:"status"`
	DeviceUID   string             `json:"device_uid"`
	Created     time.Time          `json:"created"`
	IntendedUse CardUse            `json:"intended_use"`
	Data        CardData           `json:"data"`
	Sites       []CardSite         `json:"validation"`
	Limitations []string           `json:"limitations"`
	Lineage     CardLineage        `json:"lineage"`
	Gate        Gate               `json:"gate"`
	Verify      string             `json:"verify"` // the command that checks this card
	Privacy     *Privacy           `json:"privacy,omitempty"`
	Secure      *SecureAggregation `json:"secure_aggregation,omitempty"`
}

// CardFormat is CardDoc.Format.
const CardFormat = "concord.model-card/1"

// CardUse is the intended use, from the job spec.
type CardUse struct {
	Purpose    string `json:"purpose"`
	LegalBasis string `json:"legal_basis"`
}

// CardData summarises the data: counts only.
type CardData struct {
	TrainingSites   []CardCount `json:"training_sites"`
	TrainingRecords uint64      `json:"training_records"`
	ValidationSites []string    `json:"validation_sites"`
}

// CardCount is one training site's example count.
type CardCount struct {
	Site    string `json:"site"`
	Records uint64 `json:"records"`
}

// CardSite is one validation site's result for the global model.
type CardSite struct {
	Site        string                      `json:"site"`
	Round       int                         `json:"round"`
	Examples    int                         `json:"examples"`
	Positives   int                         `json:"positives,omitempty"`
	Metrics     []CardMetric                `json:"metrics"`
	Subgroups   []CardSubgroup              `json:"subgroups,omitempty"`
	Calibration []evaluation.CalibrationBin `json:"calibration,omitempty"`
	// ECE is the expected calibration error over the bins: the
	// count-weighted mean gap between predicted and observed rates.
	ECE *float64 `json:"ece,omitempty"`
}

// CardMetric is a metric with its 95% interval.
type CardMetric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// CardSubgroup is one subgroup's AUC, or its suppression.
type CardSubgroup struct {
	Field      string      `json:"field"`
	Value      string      `json:"value"`
	Examples   int         `json:"examples,omitempty"`
	Suppressed bool        `json:"suppressed"`
	AUC        *CardMetric `json:"auc,omitempty"`
}

// CardLineage is where the version came from.
type CardLineage struct {
	JobID         string   `json:"job_id"`
	SpecSHA256    string   `json:"spec_sha256"`
	PipelineHash  string   `json:"pipeline_hash"`
	LayoutHash    string   `json:"layout_hash"`
	WeightsSHA256 string   `json:"weights_sha256"`
	Rounds        int      `json:"rounds"`
	Samples       uint64   `json:"samples"`
	Parent        string   `json:"parent,omitempty"`
	Coordinator   string   `json:"coordinator"`
	SecureAgg     string   `json:"secure_aggregation"`
	Privacy       string   `json:"privacy"`
	Contributors  []string `json:"contributors"`
}

// metricOrder puts the metrics people look for first.
var metricOrder = []string{"auc", "sensitivity", "specificity", "sensitivity_at_specificity", "precision", "f1",
	"accuracy", "balanced_accuracy", "dice", "iou"}

// Card renders the model card of m: card.html (self-contained, no
// external resources) and card.json. The same manifest gives the same
// bytes, so a card can be checked against its signed manifest.
func Card(m Manifest) (html, js []byte, err error) {
	doc := cardDoc(m)
	js, err = json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("model card %s: %w", m.Version, err)
	}
	js = append(js, '\n')
	html, err = renderHTML(doc, m)
	if err != nil {
		return nil, nil, fmt.Errorf("model card %s: %w", m.Version, err)
	}
	return html, js, nil
}

func cardDoc(m Manifest) CardDoc {
	if m.DeviceUID == "" {
		m.DeviceUID = DeviceUID(m.WeightsSHA256)
	}
	d := CardDoc{Format: CardFormat, Name: m.Name, Version: m.Version, Status: m.Status, DeviceUID: m.DeviceUID,
		Created: m.Created.UTC(), IntendedUse: CardUse{Purpose: m.Purpose, LegalBasis: m.LegalBasis},
		Gate: m.Gate, Privacy: m.Privacy, Secure: m.SecureAggregation,
		Verify: "concordctl models verify DIR --trust audit-trust.txt"}
	for _, s := range m.TrainingSites {
		d.Data.TrainingSites = append(d.Data.TrainingSites, CardCount{Site: s, Records: m.Records[s]})
		d.Data.TrainingRecords += m.Records[s]
	}
	d.Data.ValidationSites = append([]string{}, m.ValidationSites...)
	for _, v := range latestGlobal(m) {
		d.Sites = append(d.Sites, cardSite(v))
	}
	d.Lineage = lineageOf(m)
	d.Limitations = limitations(m, d)
	return d
}

// latestGlobal is the global model's latest result per validation site, in
// the manifest's site order, then any other site's by name.
func latestGlobal(m Manifest) []Validation {
	byS := globalResults(m.Validation)
	var out []Validation
	for _, s := range m.ValidationSites {
		if v, ok := byS[s]; ok {
			out = append(out, v)
			delete(byS, s)
		}
	}
	rest := make([]string, 0, len(byS))
	for s := range byS {
		rest = append(rest, s)
	}
	sort.Strings(rest)
	for _, s := range rest {
		out = append(out, byS[s])
	}
	return out
}

func cardSite(v Validation) CardSite {
	a := v.Assessment
	cs := CardSite{Site: v.Site, Round: v.Round, Examples: a.Examples, Positives: a.Positives, Calibration: a.Calibration}
	cs.Metrics = orderedMetrics(a.Metrics)
	for _, s := range a.Subgroups {
		sg := CardSubgroup{Field: s.Field, Value: s.Value, Examples: s.Examples, Suppressed: s.Suppressed}
		if e, ok := s.Metrics["auc"]; ok && !s.Suppressed {
			sg.AUC = &CardMetric{Name: "auc", Value: e.Value, Lower: e.Lower, Upper: e.Upper}
		}
		if s.Suppressed {
			sg.Examples = 0
		}
		cs.Subgroups = append(cs.Subgroups, sg)
	}
	if n, sum := 0, 0.0; len(a.Calibration) > 0 {
		for _, b := range a.Calibration {
			n += b.Count
			sum += float64(b.Count) * math.Abs(b.MeanPredicted-b.ObservedRate)
		}
		if n > 0 {
			e := sum / float64(n)
			cs.ECE = &e
		}
	}
	return cs
}

func orderedMetrics(ms map[string]evaluation.Estimate) []CardMetric {
	names := make([]string, 0, len(ms))
	for k := range ms {
		names = append(names, k)
	}
	rank := func(n string) int {
		for i, o := range metricOrder {
			if o == n {
				return i
			}
		}
		return len(metricOrder)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		return ri < rj || ri == rj && names[i] < names[j]
	})
	out := make([]CardMetric, 0, len(names))
	for _, n := range names {
		e := ms[n]
		out = append(out, CardMetric{Name: n, Value: e.Value, Lower: e.Lower, Upper: e.Upper})
	}
	return out
}

func lineageOf(m Manifest) CardLineage {
	l := CardLineage{JobID: m.JobID, SpecSHA256: m.SpecSHA256, PipelineHash: m.PipelineHash, LayoutHash: m.LayoutHash,
		WeightsSHA256: m.WeightsSHA256, Rounds: len(m.Rounds), Parent: m.Parent, Coordinator: m.Coordinator,
		SecureAgg: secureText(m.SecureAggregation), Privacy: privacyText(m.Privacy)}
	seen := map[string]bool{}
	for _, r := range m.Rounds {
		l.Samples += r.Samples
		for _, c := range r.Contributors {
			if !seen[c] {
				seen[c] = true
				l.Contributors = append(l.Contributors, c)
			}
		}
	}
	sort.Strings(l.Contributors)
	return l
}

func secureText(s *SecureAggregation) string {
	if s == nil || s.Scheme == "" || s.Scheme == "none" {
		return "none: the coordinator saw each site's update"
	}
	t := s.Scheme
	if s.Params != "" {
		t += " (" + s.Params + ")"
	}
	if s.Parties > 0 {
		t += fmt.Sprintf(", decryption needs %d of %d sites", s.Threshold, s.Parties)
	}
	return t
}

func privacyText(p *Privacy) string {
	if !hasDP(p) {
		return "no differential privacy"
	}
	t := "differential privacy, level " + p.Level
	if p.NoiseMultiplier > 0 {
		t += fmt.Sprintf(", noise multiplier %g", p.NoiseMultiplier)
	}
	if p.Delta > 0 {
		t += fmt.Sprintf(", δ %g", p.Delta)
	}
	if eps := maxEpsilon(p); eps > 0 {
		t += fmt.Sprintf(", ε up to %.2f per site", eps)
	}
	return t
}

func hasDP(p *Privacy) bool {
	return p != nil && p.Level != "" && p.Level != "none" && p.Level != "off"
}

func maxEpsilon(p *Privacy) float64 {
	eps := 0.0
	for _, e := range p.EpsilonBySite {
		eps = math.Max(eps, e)
	}
	return eps
}

// wideInterval is the 95% interval width above which an estimate is
// called imprecise.
const wideInterval = 0.1

// limitations states, from the facts in the manifest, what the reader
// should not assume.
func limitations(m Manifest, d CardDoc) []string {
	var out []string
	if m.Gate.State != GatePassed {
		out = append(out, "This version did not pass its promotion gates ("+strings.Join(m.Gate.Reasons, "; ")+"). It must not be used for patient care.")
	}
	if m.Purpose == "" {
		out = append(out, "The job stated no intended use: do not use this version for any clinical purpose until one is stated and validated.")
	}
	switch n := len(d.Sites); {
	case n == 0:
		out = append(out, "No site validated this version on held-out data: its performance on new patients is unknown.")
	case n < 3:
		what := "one site"
		if n > 1 {
			what = fmt.Sprintf("%d sites", n)
		}
		out = append(out, fmt.Sprintf("Validated at %s only (%s): performance at other hospitals, scanners and populations may differ.",
			what, strings.Join(siteNames(d.Sites), ", ")))
	}
	for _, s := range d.Sites {
		for _, mt := range s.Metrics {
			if w := mt.Upper - mt.Lower; w > wideInterval+1e-9 {
				out = append(out, fmt.Sprintf("Site %s: the 95%% interval of %s is wide (%.3f to %.3f), from %d examples: the estimate is imprecise.",
					s.Site, mt.Name, mt.Lower, mt.Upper, s.Examples))
				break
			}
		}
		var sup []string
		for _, g := range s.Subgroups {
			if g.Suppressed {
				sup = append(sup, g.Field+"="+g.Value)
			}
		}
		if len(sup) > 0 {
			out = append(out, fmt.Sprintf("Site %s: subgroups %s had too few examples to report and were suppressed: performance for them is unknown.",
				s.Site, strings.Join(sup, ", ")))
		}
	}
	if hasDP(m.Privacy) {
		out = append(out, "Trained with "+privacyText(m.Privacy)+": the noise protects patients and may lower accuracy, most for small subgroups.")
	} else {
		out = append(out, "Trained without differential privacy: the model may memorise rare training examples; do not release it outside the consortium's agreement.")
	}
	return out
}

func siteNames(ss []CardSite) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Site
	}
	return out
}
