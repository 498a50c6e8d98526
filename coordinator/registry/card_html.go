package registry

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"

	"github.com/concord-fl/concord/plot"
)

// chart is one picture of the card, inline as a data URI so the card
// works offline and carries no external reference.
type chart struct {
	Title string
	Alt   string
	URI   template.URL
}

// renderHTML writes the card's HTML; charts are PNGs drawn by the plot
// package, which renders deterministically.
func renderHTML(d CardDoc, m Manifest) ([]byte, error) {
	charts, err := cardCharts(d, m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := cardTemplate.Execute(&buf, struct {
		CardDoc
		Charts []chart
	}{d, charts}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

const chartW, chartH = 720, 420

func cardCharts(d CardDoc, m Manifest) ([]chart, error) {
	var out []chart
	add := func(title, alt string, png func(io.Writer) error) error {
		var buf bytes.Buffer
		if err := png(&buf); err != nil {
			return fmt.Errorf("chart %q: %w", title, err)
		}
		out = append(out, chart{Title: title, Alt: alt,
			URI: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))})
		return nil
	}
	foot := "Reproduce: concordctl models show " + d.Version
	var sites []string
	auc := plot.BarSeries{Name: "AUC"}
	for _, s := range d.Sites {
		for _, mt := range s.Metrics {
			if mt.Name == "auc" && finiteAll(mt.Value, mt.Lower, mt.Upper) {
				sites = append(sites, s.Site)
				auc.Values = append(auc.Values, mt.Value)
				auc.Lower, auc.Upper = append(auc.Lower, mt.Lower), append(auc.Upper, mt.Upper)
			}
		}
	}
	if len(sites) > 0 {
		b := plot.Bars("AUC by validation site, with 95% intervals", "AUC", sites, auc)
		b.YMin, b.YMax, b.Width, b.Height, b.Footnote = plot.F(0), plot.F(1), chartW, chartH, foot
		if err := add(b.Title, "AUC per validation site with 95% interval whiskers", b.PNG); err != nil {
			return nil, err
		}
	}
	diagonal := func(name string) plot.Series { return plot.Series{Name: name, X: []float64{0, 1}, Y: []float64{0, 1}} }
	roc := plot.Chart{Title: "ROC curve by validation site", XLabel: "False positive rate (1 − specificity)",
		YLabel: "True positive rate (sensitivity)", YMin: plot.F(0), YMax: plot.F(1), Width: chartW, Height: chartH, Footnote: foot}
	cal := plot.Chart{Title: "Calibration by validation site", XLabel: "Mean predicted probability",
		YLabel: "Observed rate", YMin: plot.F(0), YMax: plot.F(1), Width: chartW, Height: chartH, Footnote: foot}
	for _, v := range latestGlobal(m) {
		if pts := v.Assessment.ROC; len(pts) > 0 {
			s := plot.Series{Name: v.Site}
			for _, p := range pts {
				s.X, s.Y = append(s.X, p.FPR), append(s.Y, p.TPR)
			}
			roc.Series = append(roc.Series, s)
		}
		if bins := v.Assessment.Calibration; len(bins) > 0 {
			s := plot.Series{Name: v.Site}
			for _, b := range bins {
				if b.Count > 0 {
					s.X, s.Y = append(s.X, b.MeanPredicted), append(s.Y, b.ObservedRate)
				}
			}
			cal.Series = append(cal.Series, s)
		}
	}
	if len(roc.Series) > 0 {
		roc.Series = append(roc.Series, diagonal("chance"))
		if err := add(roc.Title, "ROC curves per validation site", roc.PNG); err != nil {
			return nil, err
		}
	}
	if len(cal.Series) > 0 {
		cal.Series = append(cal.Series, diagonal("perfect calibration"))
		if err := add(cal.Title, "Reliability diagram per validation site", cal.PNG); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func finiteAll(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

var cardTemplate = template.Must(template.New("card").Funcs(template.FuncMap{
	"f3":   func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) },
	"date": func(d CardDoc) string { return d.Created.Format("2006-01-02 15:04 UTC") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Model card: {{.Name}} {{.Version}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.passed{color:#05603a;font-weight:bold}.rejected{color:#b42318;font-weight:bold}
.muted{color:#666}code{font-size:.9em;word-break:break-all}img{max-width:100%;height:auto}
</style>
</head>
<body>
<h1>Model card: {{.Name}} {{.Version}}</h1>
<p class="muted">Device UID <code>{{.DeviceUID}}</code> · created {{date .CardDoc}} · status <span class="{{.Gate.State}}">{{.Status}}</span></p>

<h2>Intended use</h2>
<p><strong>Purpose:</strong> {{if .IntendedUse.Purpose}}{{.IntendedUse.Purpose}}{{else}}<em>not stated in the job spec</em>{{end}}</p>
<p><strong>Legal basis:</strong> {{if .IntendedUse.LegalBasis}}{{.IntendedUse.LegalBasis}}{{else}}<em>not stated in the job spec</em>{{end}}</p>

<h2>Data</h2>
<table><tr><th>Training site</th><th>Records</th></tr>
{{range .Data.TrainingSites}}<tr><td>{{.Site}}</td><td class="n">{{.Records}}</td></tr>
{{end}}<tr><th>Total</th><th class="n">{{.Data.TrainingRecords}}</th></tr></table>
<p><strong>Validation sites:</strong> {{range $i, $s := .Data.ValidationSites}}{{if $i}}, {{end}}{{$s}}{{else}}none{{end}}</p>
<p class="muted">Counts only: no image or patient record leaves a hospital.</p>

<h2>Performance</h2>
{{range .Sites}}<h3>Site {{.Site}}</h3>
<p class="muted">{{.Examples}} examples{{if .Positives}}, {{.Positives}} positive{{end}}; global model of round {{.Round}}.</p>
<table><tr><th>Metric</th><th>Value</th><th>95% interval</th></tr>
{{range .Metrics}}<tr><td>{{.Name}}</td><td class="n">{{f3 .Value}}</td><td class="n">{{f3 .Lower}} – {{f3 .Upper}}</td></tr>
{{end}}</table>
{{if .Subgroups}}<table><tr><th>Subgroup</th><th>Examples</th><th>AUC</th><th>95% interval</th></tr>
{{range .Subgroups}}<tr><td>{{.Field}} = {{.Value}}</td>{{if .Suppressed}}<td colspan="3" class="muted">suppressed: too few examples to report</td>{{else}}<td class="n">{{.Examples}}</td>{{with .AUC}}<td class="n">{{f3 .Value}}</td><td class="n">{{f3 .Lower}} – {{f3 .Upper}}</td>{{else}}<td colspan="2" class="muted">not reported</td>{{end}}{{end}}</tr>
{{end}}</table>{{end}}
{{if .Calibration}}<table><tr><th>Predicted</th><th>Examples</th><th>Mean predicted</th><th>Observed rate</th></tr>
{{range .Calibration}}<tr><td>{{f3 .Lower}} – {{f3 .Upper}}</td><td class="n">{{.Count}}</td><td class="n">{{f3 .MeanPredicted}}</td><td class="n">{{f3 .ObservedRate}}</td></tr>
{{end}}</table>{{with .ECE}}<p>Expected calibration error: {{f3 .}}</p>{{end}}{{end}}
{{else}}<p><em>No validation results: this version was not validated on held-out sites.</em></p>
{{end}}
{{range .Charts}}<figure><img src="{{.URI}}" alt="{{.Alt}}" width="720" height="420"><figcaption>{{.Title}}</figcaption></figure>
{{end}}
<h2>Limitations</h2>
<ul>{{range .Limitations}}<li>{{.}}</li>
{{end}}</ul>

<h2>Lineage</h2>
<table>
<tr><th>Job</th><td>{{.Lineage.JobID}}</td></tr>
<tr><th>Rounds</th><td>{{.Lineage.Rounds}} ({{.Lineage.Samples}} examples seen in total)</td></tr>
<tr><th>Contributing sites</th><td>{{range $i, $s := .Lineage.Contributors}}{{if $i}}, {{end}}{{$s}}{{end}}</td></tr>
<tr><th>Parent version</th><td>{{if .Lineage.Parent}}{{.Lineage.Parent}}{{else}}none{{end}}</td></tr>
<tr><th>Secure aggregation</th><td>{{.Lineage.SecureAgg}}</td></tr>
<tr><th>Privacy</th><td>{{.Lineage.Privacy}}</td></tr>
<tr><th>Job spec SHA-256</th><td><code>{{.Lineage.SpecSHA256}}</code></td></tr>
<tr><th>Pipeline hash</th><td><code>{{.Lineage.PipelineHash}}</code></td></tr>
<tr><th>Layout hash</th><td><code>{{.Lineage.LayoutHash}}</code></td></tr>
<tr><th>Weights SHA-256</th><td><code>{{.Lineage.WeightsSHA256}}</code></td></tr>
<tr><th>Coordinator</th><td>{{.Lineage.Coordinator}}</td></tr>
</table>

<h2>Promotion gates</h2>
<p class="{{.Gate.State}}">{{.Gate.State}}</p>
{{if .Gate.Reasons}}<ul>{{range .Gate.Reasons}}<li>{{.}}</li>
{{end}}</ul>{{end}}

<p class="muted">This card is rendered from the version's signed manifest. Check it, the weights and the manifest's signature with:<br><code>{{.Verify}}</code></p>
</body>
</html>
`))
