package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"codeberg.org/go-fonts/liberation/liberationmonoregular"
	"codeberg.org/go-fonts/liberation/liberationsansbold"
	"codeberg.org/go-fonts/liberation/liberationsansregular"
	"github.com/go-pdf/fpdf"
)

// pdfAttachment is the name of the signed JSON attached to a PDF report.
const pdfAttachment = "concord-report.json"

// Layout of an A4 page, in millimetres.
const (
	pageW, pageH   = 210.0, 297.0
	margin         = 15.0
	contentW       = pageW - 2*margin
	bottom         = pageH - 18.0 // last baseline above the footer
	lineH          = 4.2          // body text at 9.5 pt
	cellPad        = 1.2
	tableFontSize  = 8.0
	tableLineH     = 3.5
	headingKeepMin = 35.0 // a heading needs this much room below it
)

// WritePDF writes the report as an A4 PDF: a title page, then one section
// per part of the report with tables that wrap long text, the epsilon
// chart, and page numbers in the footer. The signed JSON is attached to
// the document as the file concord-report.json (PDF readers list it under
// attachments). The output is deterministic: the same report gives the
// same bytes, which is how [ExtractAndVerify] checks the visible pages.
func WritePDF(w io.Writer, r *Report) error {
	signed, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write report pdf: %w", err)
	}
	p := &pdfWriter{f: fpdf.New("P", "mm", "A4", ""), r: r}
	f := p.f
	// Liberation fonts (metric-compatible with Arial and Courier New)
	// cover the Latin, Greek and Cyrillic names of European hospitals;
	// the PDF's core fonts stop at Windows-1252.
	f.AddUTF8FontFromBytes(sans, "", liberationsansregular.TTF)
	f.AddUTF8FontFromBytes(sans, "B", liberationsansbold.TTF)
	f.AddUTF8FontFromBytes(mono, "", liberationmonoregular.TTF)
	d := buildDocument(r)
	f.SetCreationDate(r.GeneratedAt)
	f.SetModificationDate(r.GeneratedAt)
	f.SetCatalogSort(true)
	f.SetTitle(d.Title+": "+r.Consortium+", "+subjectLine(r.Subject), true)
	f.SetAuthor(r.GeneratedBy, true)
	f.SetCreator("Concord", true)
	f.SetSubject("Compliance report (HIPAA §164.312, GDPR Art. 30)", true)
	f.SetKeywords("Concord compliance report; the signed data is attached as "+pdfAttachment, true)
	f.SetAttachments([]fpdf.Attachment{{Content: signed, Filename: pdfAttachment, Description: "Signed report data (JSON)"}})
	f.SetMargins(margin, margin, margin)
	f.SetAutoPageBreak(false, 0)
	f.AliasNbPages("{nb}")
	footer := p.text(fmt.Sprintf("%s · %s · %s", d.Title, r.Consortium, subjectLine(r.Subject)))
	f.SetFooterFunc(func() {
		f.SetFont(sans, "", 7.5)
		f.SetTextColor(110, 110, 110)
		f.SetDrawColor(190, 190, 190)
		f.Line(margin, pageH-13, pageW-margin, pageH-13)
		f.Text(margin, pageH-9, footer)
		num := fmt.Sprintf("Page %d of {nb}", f.PageNo())
		f.Text(pageW-margin-f.GetStringWidth(num), pageH-9, num)
		f.SetTextColor(0, 0, 0)
	})
	if r.Privacy.Enabled && len(r.Privacy.Sites) > 0 {
		png, err := epsilonChart(r, 1200, 675)
		if err != nil {
			return fmt.Errorf("write report pdf: %w", err)
		}
		f.RegisterImageOptionsReader("epsilon", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
		p.chart = true
	}
	p.titlePage(d)
	for _, s := range d.Sections {
		p.section(s)
	}
	if err := f.Output(w); err != nil {
		return fmt.Errorf("write report pdf: %w", err)
	}
	return nil
}

type pdfWriter struct {
	f     *fpdf.Fpdf
	r     *Report
	y     float64
	chart bool
}

// Font families registered in WritePDF.
const (
	sans = "LiberationSans"
	mono = "LiberationMono"
)

// text makes s safe for fpdf, whose width tables stop at the Basic
// Multilingual Plane: other characters (emoji) become "?".
func (p *pdfWriter) text(s string) string {
	return strings.Map(func(r rune) rune {
		if r > 0xFFFF {
			return '?'
		}
		return r
	}, s)
}

func (p *pdfWriter) newPage() {
	p.f.AddPage()
	p.y = margin
}

// room starts a new page unless h millimetres fit below the cursor.
func (p *pdfWriter) room(h float64) {
	if p.y+h > bottom {
		p.newPage()
	}
}

func (p *pdfWriter) titlePage(d document) {
	f := p.f
	p.newPage()
	f.SetFillColor(11, 83, 148)
	f.Rect(0, 0, pageW, 8, "F")
	p.y = 45
	f.SetFont(sans, "B", 28)
	f.SetTextColor(11, 83, 148)
	f.Text(margin, p.y, p.text(d.Title))
	p.y += 12
	f.SetFont(sans, "", 16)
	f.SetTextColor(60, 60, 60)
	for _, l := range f.SplitText(p.text(d.Subtitle), contentW) {
		f.Text(margin, p.y, l)
		p.y += 7
	}
	f.SetFont(sans, "", 13)
	f.Text(margin, p.y+1, p.text(subjectLine(p.r.Subject)))
	f.SetTextColor(0, 0, 0)
	p.y += 14
	p.table(&table{Header: nil, Widths: []float64{1, 2.6}, Rows: rowsOf(d.Facts)}, 9.5, 4.4, true)
	p.y += 4
	for _, n := range d.Notice {
		p.notice(n)
	}
}

func rowsOf(kv [][2]string) [][]string {
	out := make([][]string, len(kv))
	for i, x := range kv {
		out[i] = []string{x[0], x[1]}
	}
	return out
}

func (p *pdfWriter) notice(s string) {
	f := p.f
	f.SetFont(sans, "", 9.5)
	lines := f.SplitText(p.text(s), contentW-8)
	h := float64(len(lines))*lineH + 4
	p.room(h)
	f.SetFillColor(255, 248, 230)
	f.Rect(margin, p.y, contentW, h, "F")
	f.SetFillColor(230, 159, 0)
	f.Rect(margin, p.y, 1.5, h, "F")
	for i, l := range lines {
		f.Text(margin+5, p.y+2+float64(i+1)*lineH-1, l)
	}
	p.y += h + 3
}

func (p *pdfWriter) section(s section) {
	f := p.f
	if s.ID == "purpose" || p.y > bottom-headingKeepMin {
		p.newPage()
	} else {
		p.y += 6
	}
	f.SetFont(sans, "B", 13)
	f.SetTextColor(11, 83, 148)
	for _, l := range f.SplitText(p.text(s.Heading), contentW) {
		p.y += 6
		f.Text(margin, p.y, l)
	}
	f.SetDrawColor(11, 83, 148)
	f.SetLineWidth(0.5)
	f.Line(margin, p.y+2, pageW-margin, p.y+2)
	f.SetLineWidth(0.2)
	f.SetTextColor(0, 0, 0)
	p.y += 6
	for _, b := range s.Blocks {
		switch {
		case b.Table != nil:
			p.table(b.Table, tableFontSize, tableLineH, false)
			p.y += 3
		case b.Chart:
			if p.chart {
				h := contentW * 675 / 1200
				p.room(h + 4)
				f.ImageOptions("epsilon", margin, p.y, contentW, h, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
				p.y += h + 4
			}
		case b.Pre != "":
			p.pre(b.Pre)
		default:
			p.paragraph(b.Text)
		}
	}
}

func (p *pdfWriter) paragraph(s string) {
	f := p.f
	f.SetFont(sans, "", 9.5)
	for _, l := range f.SplitText(p.text(s), contentW) {
		p.room(lineH)
		p.y += lineH
		f.Text(margin, p.y-1, l)
	}
	p.y += 2
}

func (p *pdfWriter) pre(s string) {
	f := p.f
	f.SetFont(mono, "", 7.5)
	lines := f.SplitText(p.text(strings.TrimRight(s, "\n")), contentW-4)
	h := float64(len(lines))*3.3 + 3
	p.room(h)
	f.SetFillColor(246, 246, 246)
	f.Rect(margin, p.y, contentW, h, "F")
	for i, l := range lines {
		f.Text(margin+2, p.y+1.5+float64(i+1)*3.3-0.8, l)
	}
	p.y += h + 3
}

// line is one wrapped line of a table cell; todo marks the lines of a
// placeholder the hospital must complete.
type line struct {
	text string
	todo bool
}

// wrap splits a cell at its newlines, then to width w in the current font.
func (p *pdfWriter) wrap(s string, w float64) []line {
	var out []line
	for _, para := range strings.Split(s, "\n") {
		k := strings.Index(para, placeholderPrefix)
		for _, l := range p.f.SplitText(p.text(para), w) {
			out = append(out, line{text: l, todo: k >= 0})
		}
	}
	return out
}

// table draws t across the content width, wrapping each cell's text and
// repeating the header on each new page. keyCol shades the first column
// instead of a header row (the title page's facts).
func (p *pdfWriter) table(t *table, size, lh float64, keyCol bool) {
	f := p.f
	if t.Size > 0 {
		lh *= t.Size / size
		size = t.Size
	}
	var sum float64
	for _, w := range t.Widths {
		sum += w
	}
	ws := make([]float64, len(t.Widths))
	for i, w := range t.Widths {
		ws[i] = w / sum * contentW
	}
	style := func(header bool, col int) string {
		if header || keyCol && col == 0 {
			return "B"
		}
		return ""
	}
	split := func(row []string, header bool) ([][]line, float64) {
		cells := make([][]line, len(row))
		n := 1
		for i, c := range row {
			f.SetFont(sans, style(header, i), size)
			cells[i] = p.wrap(c, ws[i]-2*cellPad+2*f.GetCellMargin())
			n = max(n, len(cells[i]))
		}
		return cells, float64(n)*lh + 2*cellPad
	}
	draw := func(cells [][]line, h float64, header bool) {
		x := margin
		for i := range cells {
			f.SetFont(sans, style(header, i), size)
			f.SetDrawColor(187, 187, 187)
			switch {
			case header:
				f.SetFillColor(232, 238, 246)
				f.Rect(x, p.y, ws[i], h, "FD")
			case keyCol && i == 0:
				f.SetFillColor(243, 243, 243)
				f.Rect(x, p.y, ws[i], h, "FD")
			default:
				f.Rect(x, p.y, ws[i], h, "D")
			}
			for k, l := range cells[i] {
				if l.todo {
					f.SetTextColor(170, 90, 0)
				}
				f.Text(x+cellPad, p.y+cellPad+float64(k+1)*lh-0.9, l.text)
				f.SetTextColor(0, 0, 0)
			}
			x += ws[i]
		}
		p.y += h
	}
	var hcells [][]line
	var hh float64
	if len(t.Header) > 0 {
		hcells, hh = split(t.Header, true)
	}
	header := func() {
		if hcells != nil {
			draw(hcells, hh, true)
		}
	}
	minRow := lh + 2*cellPad
	for i, row := range t.Rows {
		cells, h := split(row, false)
		if i == 0 {
			if p.y+hh+min(h, 4*minRow) > bottom {
				p.newPage()
			}
			header()
		}
		// A row taller than the room left continues on the next page,
		// under the header again.
		for p.y+h > bottom {
			if h <= bottom-margin-hh { // fits on a fresh page
				p.newPage()
				header()
				break
			}
			n := int((bottom - p.y - 2*cellPad) / lh)
			if n < 1 {
				p.newPage()
				header()
				continue
			}
			head := make([][]line, len(cells))
			for k, c := range cells {
				head[k], cells[k] = c[:min(n, len(c))], c[min(n, len(c)):]
			}
			draw(head, float64(n)*lh+2*cellPad, false)
			h = 2 * cellPad
			for _, c := range cells {
				h = max(h, float64(len(c))*lh+2*cellPad)
			}
			p.newPage()
			header()
		}
		draw(cells, h, false)
	}
}
