package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/learning"
)

// DiffReport compares two versions: their validation metrics per site,
// their lineage and how far each named tensor moved from A to B.
type DiffReport struct {
	A       string       `json:"a"`
	B       string       `json:"b"`
	Metrics []MetricDiff `json:"metrics"`
	Lineage []FieldDiff  `json:"lineage"` // only the fields that differ
	Layers  []LayerDiff  `json:"layers"`
	Total   LayerDiff    `json:"total"` // the whole vector
}

// MetricDiff is one metric at one validation site; nil where a version
// has no result.
type MetricDiff struct {
	Site   string               `json:"site"`
	Metric string               `json:"metric"`
	A      *evaluation.Estimate `json:"a"`
	B      *evaluation.Estimate `json:"b"`
}

// FieldDiff is one lineage field that differs.
type FieldDiff struct {
	Field string `json:"field"`
	A     string `json:"a"`
	B     string `json:"b"`
}

// LayerDiff is the change of one named tensor: the L2 norm of B−A, and
// that norm relative to A's (nil when A's is zero).
type LayerDiff struct {
	Name     string   `json:"name"`
	Shape    []int    `json:"shape,omitempty"`
	Params   int      `json:"params"`
	L2       float64  `json:"l2"`
	Relative *float64 `json:"relative"`
}

// Diff compares versions a and b with weights wa and wb, both laid out by
// layoutJSON. Versions with different layouts are refused: their tensors
// do not correspond.
func Diff(a, b Manifest, wa, wb []float32, layoutJSON []byte) (DiffReport, error) {
	if a.LayoutHash != b.LayoutHash {
		return DiffReport{}, fmt.Errorf("layouts differ: %s has layout %s, %s has %s; their parameters cannot be compared tensor by tensor",
			a.Version, short(a.LayoutHash), b.Version, short(b.LayoutHash))
	}
	s := sha256.Sum256(layoutJSON)
	if hex.EncodeToString(s[:]) != a.LayoutHash {
		return DiffReport{}, fmt.Errorf("the layout given is not the versions' layout %s", short(a.LayoutHash))
	}
	l, err := learning.ParseLayout(layoutJSON)
	if err != nil {
		return DiffReport{}, err
	}
	if len(wa) != l.Total || len(wb) != l.Total {
		return DiffReport{}, fmt.Errorf("weights of %d and %d parameters, the layout has %d", len(wa), len(wb), l.Total)
	}
	r := DiffReport{A: a.Version, B: b.Version, Metrics: metricDiffs(a, b), Lineage: lineageDiffs(a, b)}
	for _, e := range l.Params {
		d := layerDiff(wa[e.Offset:e.Offset+e.Size], wb[e.Offset:e.Offset+e.Size])
		d.Name, d.Shape = e.Name, e.Shape
		r.Layers = append(r.Layers, d)
	}
	r.Total = layerDiff(wa, wb)
	r.Total.Name = "all parameters"
	return r, nil
}

func layerDiff(a, b []float32) LayerDiff {
	var diff, norm float64
	for i := range a {
		d := float64(b[i]) - float64(a[i])
		diff += d * d
		norm += float64(a[i]) * float64(a[i])
	}
	ld := LayerDiff{Params: len(a), L2: math.Sqrt(diff)}
	if norm > 0 {
		rel := ld.L2 / math.Sqrt(norm)
		ld.Relative = &rel
	}
	return ld
}

func metricDiffs(a, b Manifest) []MetricDiff {
	ra, rb := globalResults(a.Validation), globalResults(b.Validation)
	siteSet := map[string]bool{}
	for s := range ra {
		siteSet[s] = true
	}
	for s := range rb {
		siteSet[s] = true
	}
	sites := make([]string, 0, len(siteSet))
	for s := range siteSet {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	var out []MetricDiff
	for _, s := range sites {
		ms := map[string]evaluation.Estimate{}
		for k, v := range ra[s].Assessment.Metrics {
			ms[k] = v
		}
		for k, v := range rb[s].Assessment.Metrics {
			ms[k] = v
		}
		for _, m := range orderedMetrics(ms) {
			d := MetricDiff{Site: s, Metric: m.Name}
			if e, ok := ra[s].Assessment.Metrics[m.Name]; ok {
				d.A = &e
			}
			if e, ok := rb[s].Assessment.Metrics[m.Name]; ok {
				d.B = &e
			}
			out = append(out, d)
		}
	}
	return out
}

func lineageDiffs(a, b Manifest) []FieldDiff {
	fields := []struct {
		name string
		of   func(m Manifest) string
	}{
		{"job", func(m Manifest) string { return m.JobID }},
		{"name", func(m Manifest) string { return m.Name }},
		{"rounds", func(m Manifest) string { return fmt.Sprint(len(m.Rounds)) }},
		{"training sites", func(m Manifest) string { return strings.Join(m.TrainingSites, ", ") }},
		{"validation sites", func(m Manifest) string { return strings.Join(m.ValidationSites, ", ") }},
		{"spec sha256", func(m Manifest) string { return m.SpecSHA256 }},
		{"pipeline hash", func(m Manifest) string { return m.PipelineHash }},
		{"privacy", func(m Manifest) string { return privacyText(m.Privacy) }},
		{"secure aggregation", func(m Manifest) string { return secureText(m.SecureAggregation) }},
		{"parent", func(m Manifest) string { return m.Parent }},
		{"coordinator", func(m Manifest) string { return m.Coordinator }},
		{"weights sha256", func(m Manifest) string { return m.WeightsSHA256 }},
		{"gate", func(m Manifest) string { return m.Gate.State }},
	}
	var out []FieldDiff
	for _, f := range fields {
		if va, vb := f.of(a), f.of(b); va != vb {
			out = append(out, FieldDiff{Field: f.name, A: va, B: vb})
		}
	}
	return out
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// WriteText writes the report for people: metrics side by side, lineage
// differences, then the parameter change per tensor.
func (r DiffReport) WriteText(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Validation metrics (global model, 95%% intervals)\n")
	if len(r.Metrics) == 0 {
		fmt.Fprintf(tw, "  neither version has validation results\n")
	} else {
		fmt.Fprintf(tw, "  SITE\tMETRIC\t%s\t%s\tCHANGE\n", r.A, r.B)
		for _, m := range r.Metrics {
			change := "-"
			if m.A != nil && m.B != nil {
				change = fmt.Sprintf("%+.3f", m.B.Value-m.A.Value)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", m.Site, m.Metric, estimate(m.A), estimate(m.B), change)
		}
	}
	fmt.Fprintf(tw, "\nLineage\n")
	if len(r.Lineage) == 0 {
		fmt.Fprintf(tw, "  the same\n")
	} else {
		fmt.Fprintf(tw, "  FIELD\t%s\t%s\n", r.A, r.B)
		for _, f := range r.Lineage {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Field, orNone(f.A), orNone(f.B))
		}
	}
	fmt.Fprintf(tw, "\nParameter change from %s to %s\n  TENSOR\tSHAPE\tPARAMS\tL2(B-A)\tRELATIVE\n", r.A, r.B)
	for _, l := range append(append([]LayerDiff{}, r.Layers...), r.Total) {
		shape := make([]string, len(l.Shape))
		for i, d := range l.Shape {
			shape[i] = fmt.Sprint(d)
		}
		rel := "n/a (A is zero)"
		if l.Relative != nil {
			rel = fmt.Sprintf("%.2f%%", 100**l.Relative)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%.4g\t%s\n", l.Name, strings.Join(shape, "x"), l.Params, l.L2, rel)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func estimate(e *evaluation.Estimate) string {
	if e == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", e.Value, e.Lower, e.Upper)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
