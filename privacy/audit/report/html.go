package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
)

// htmlScriptOpen starts the block holding the signed report in an HTML
// file; [ExtractAndVerify] looks for it.
const htmlScriptOpen = `<script type="application/json" id="concord-report">`

// WriteHTML writes the report as one self-contained HTML file that works
// offline: inline CSS, no scripts that run, no fonts or images fetched
// (the epsilon chart is an inline PNG), laid out for printing on A4. The
// signed JSON is embedded in a <script type="application/json"
// id="concord-report"> block.
func WriteHTML(w io.Writer, r *Report) error {
	signed, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write report html: %w", err)
	}
	data := struct {
		document
		Chart  template.URL
		Signed template.HTML
	}{document: buildDocument(r)}
	if r.Privacy.Enabled && len(r.Privacy.Sites) > 0 {
		png, err := epsilonChart(r, 960, 540)
		if err != nil {
			return fmt.Errorf("write report html: %w", err)
		}
		data.Chart = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	// encoding/json escapes <, > and &, so the JSON cannot close the
	// script element early.
	data.Signed = template.HTML(htmlScriptOpen + string(signed) + "</script>")
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, data); err != nil {
		return fmt.Errorf("write report html: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// cellHTML escapes s and marks the lines a hospital must complete.
func cellHTML(s string) template.HTML {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		esc := template.HTMLEscapeString(l)
		if k := strings.Index(l, placeholderPrefix); k >= 0 {
			esc = template.HTMLEscapeString(l[:k]) + `<mark class="todo">` + template.HTMLEscapeString(l[k:]) + `</mark>`
		}
		lines[i] = esc
	}
	return template.HTML(strings.Join(lines, "<br>"))
}

// cellClass right-aligns numbers and lets long tokens (hashes,
// signatures) break anywhere, while ordinary words stay whole.
func cellClass(s string) template.HTMLAttr {
	if _, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64); err == nil {
		return ` class="num"`
	}
	for _, w := range strings.Fields(s) {
		if len(w) > 24 {
			return ` class="long"`
		}
	}
	return ""
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{"cell": cellHTML, "class": cellClass}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}: {{.Subtitle}}</title>
<style>
@page { size: A4; margin: 18mm 15mm; }
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; font-size: 10.5pt; color: #1a1a1a; max-width: 60em; margin: 2em auto; padding: 0 1.5em; line-height: 1.4; }
h1 { font-size: 22pt; margin: 0 0 .2em; }
h2 { font-size: 14pt; margin: 1.8em 0 .5em; padding-bottom: .2em; border-bottom: 2px solid #0b5394; color: #0b5394; break-after: avoid; }
.subtitle { font-size: 14pt; color: #444; margin: 0 0 1em; }
table { border-collapse: collapse; width: 100%; margin: .6em 0 1em; font-size: 9pt; }
th, td { border: 1px solid #bbb; padding: .3em .45em; text-align: left; vertical-align: top; overflow-wrap: break-word; }
td.long { overflow-wrap: anywhere; }
th { background: #e8eef6; }
tr { break-inside: avoid; }
table.facts th { width: 13em; background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .6em; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 8.5pt; }
mark.todo { background: #ffe58a; color: #000; padding: 0 .15em; }
.notice { border-left: 4px solid #e69f00; background: #fff8e6; padding: .5em .8em; margin: .6em 0; }
figure { margin: 1em 0; }
figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 9pt; color: #555; }
.titlepage { break-after: page; }
@media print { body { margin: 0; max-width: none; padding: 0; } h2 { break-after: avoid; } figure { break-inside: avoid; } }
</style>
</head>
<body>
<section class="titlepage">
<h1 id="report-title">{{.Title}}</h1>
<p class="subtitle">{{.Subtitle}}</p>
<table class="facts">
{{range .Facts}}<tr><th>{{index . 0}}</th><td>{{cell (index . 1)}}</td></tr>
{{end}}</table>
{{range .Notice}}<p class="notice">{{.}}</p>
{{end}}</section>
{{range .Sections}}<section id="{{.ID}}">
<h2>{{.Heading}}</h2>
{{range .Blocks}}{{if .Table}}<table id="{{.Table.ID}}">
<thead><tr>{{range .Table.Header}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Table.Rows}}<tr>{{range .}}<td{{class .}}>{{cell .}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{else if .Chart}}{{if $.Chart}}<figure>
<img id="epsilon-chart" src="{{$.Chart}}" width="960" height="540" alt="Cumulative epsilon per site per round, with each site's budget as a dashed line">
<figcaption>Cumulative epsilon per site per round; dashed lines are the sites' budgets.</figcaption>
</figure>
{{end}}{{else if .Pre}}<pre>{{.Pre}}</pre>
{{else}}<p>{{cell .Text}}</p>
{{end}}{{end}}</section>
{{end}}{{.Signed}}
</body>
</html>
`))
