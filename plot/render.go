package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	xfont "golang.org/x/image/font"
	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Default and limiting sizes, in pixels.
const (
	DefaultWidth, DefaultHeight = 960, 540
	MinWidth, MinHeight         = 320, 240
	MaxWidth, MaxHeight         = 8192, 8192
)

var (
	ink       = color.RGBA{34, 34, 34, 255}
	gridColor = color.RGBA{226, 226, 226, 255}
	muted     = color.RGBA{110, 110, 110, 255}
)

// palette is Okabe and Ito's colour-blind-safe set, yellow left out for
// want of contrast on white.
var palette = []color.RGBA{
	{0, 114, 178, 255},   // blue
	{213, 94, 0, 255},    // vermillion
	{0, 158, 115, 255},   // bluish green
	{230, 159, 0, 255},   // orange
	{204, 121, 167, 255}, // reddish purple
	{86, 180, 233, 255},  // sky blue
	{0, 0, 0, 255},       // black
}

// shapes gives each series its own marker, so that lines stay apart in
// black-and-white print; 8 shapes against 7 colours keep the pairs distinct
// for 56 series.
var shapes = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.CrossGlyph{},
	draw.RingGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PlusGlyph{},
}

func seriesColor(i int) color.RGBA { return palette[i%len(palette)] }

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkRange(lo, hi *float64) error {
	if lo != nil && !finite(*lo) || hi != nil && !finite(*hi) {
		return fmt.Errorf("%w: axis bounds must be finite numbers", ErrChart)
	}
	if lo != nil && hi != nil && *lo >= *hi {
		return fmt.Errorf("%w: YMin %v is not below YMax %v", ErrChart, *lo, *hi)
	}
	return nil
}

// pictureSize applies the default size and checks the limits.
func pictureSize(w, h int) (int, int, error) {
	if w == 0 && h == 0 {
		return DefaultWidth, DefaultHeight, nil
	}
	if w < MinWidth || h < MinHeight || w > MaxWidth || h > MaxHeight {
		return 0, 0, fmt.Errorf("%w: size %dx%d is outside %dx%d..%dx%d pixels", ErrChart, w, h, MinWidth, MinHeight, MaxWidth, MaxHeight)
	}
	return w, h, nil
}

func sans(size vg.Length, bold bool) font.Font {
	f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
	if bold {
		f.Weight = xfont.WeightBold
	}
	return f
}

// newPlot is a gonum plot in the house style: sans-serif text, light
// gridlines (vertical ones only if vgrid), no legend (frame draws it beside
// the plot, not over the data).
func newPlot(title, xlabel, ylabel string, vgrid bool) *gplot.Plot {
	p := gplot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(13, true)
	p.Title.TextStyle.Color = ink
	p.Title.Padding = vg.Points(8)
	for _, a := range []*gplot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11, false)
		a.Label.TextStyle.Color = ink
		a.Tick.Label.Font = sans(9.5, false)
		a.Tick.Label.Color = ink
		a.LineStyle.Color = muted
		a.Tick.LineStyle.Color = muted
	}
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	p.X.Padding, p.Y.Padding = vg.Points(4), vg.Points(4)
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = gridColor, gridColor
	g.Vertical.Width, g.Horizontal.Width = vg.Points(0.75), vg.Points(0.75)
	if !vgrid {
		g.Vertical.Color = nil
	}
	p.Add(g)
	return p
}

// fit shortens s with an ellipsis until it is at most width wide.
func fit(sty text.Style, s string, width vg.Length) string {
	if sty.Width(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && sty.Width(string(r)+"…") > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// dpi keeps text in proportion to the picture: 96 dpi at the default size,
// never below 72 so that the smallest pictures stay legible.
func dpi(w, h int) int {
	return int(math.Max(72, math.Round(96*math.Min(float64(w)/DefaultWidth, float64(h)/DefaultHeight))))
}

// legend collects the entries frame draws beside the plot.
type legend struct {
	gplot.Legend
	n        int
	maxWidth vg.Length
}

// newLegend makes a legend whose names may take up to a third of a w×h
// picture.
func newLegend(w, h int) *legend {
	l := &legend{Legend: gplot.NewLegend()}
	l.Left, l.Top = true, true
	l.Padding = vg.Points(3)
	l.TextStyle.Font = sans(10, false)
	l.TextStyle.Color = ink
	l.maxWidth = vg.Length(w)*vg.Inch/vg.Length(dpi(w, h))/3 - l.ThumbnailWidth
	return l
}

func (l *legend) add(name string, t thumb) {
	if name == "" {
		return
	}
	l.Add(fit(l.TextStyle, name, l.maxWidth), t)
	l.n++
}

// frame renders p at w×h pixels with the legend's entries, if any, to the
// right of the plot and footnote under it.
func frame(p *gplot.Plot, l *legend, footnote string, w, h int) (*image.RGBA, error) {
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	cv := vgimg.NewWith(vgimg.UseImage(rgba), vgimg.UseDPI(dpi(w, h)))
	dc := draw.New(cv)
	margin := vg.Points(8)
	dc = draw.Crop(dc, margin, -margin, margin, -margin)
	if footnote != "" {
		sty := p.X.Tick.Label
		sty.Color, sty.XAlign, sty.YAlign = muted, draw.XLeft, draw.YBottom
		dc.FillText(sty, dc.Min, fit(sty, footnote, dc.Size().X))
		dc = draw.Crop(dc, 0, 0, sty.Height(footnote)+margin, 0)
	}
	if l != nil && l.n > 0 {
		lw := l.Rectangle(dc).Size().X
		top := vg.Length(0)
		if p.Title.Text != "" { // level with the plot's top, under the title
			top = p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding
		}
		l.Draw(draw.Crop(dc, dc.Size().X-lw, 0, 0, -top))
		dc = draw.Crop(dc, 0, -lw-margin, 0, 0)
	}
	p.Title.Text = fit(p.Title.TextStyle, p.Title.Text, dc.Size().X)
	p.Draw(dc)
	out, ok := cv.Image().(*image.RGBA)
	if !ok {
		return nil, fmt.Errorf("render chart: canvas is a %T", cv.Image())
	}
	return out, nil
}

func encode(w io.Writer, img image.Image, what string) error {
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	return nil
}

// thumb is a legend entry's sample: a line, a marker, or a filled box.
type thumb struct {
	line  *draw.LineStyle
	glyph *draw.GlyphStyle
	fill  color.Color
}

func (t thumb) Thumbnail(c *draw.Canvas) {
	if t.fill != nil {
		c.FillPolygon(t.fill, c.ClipPolygonXY([]vg.Point{c.Min, {X: c.Min.X, Y: c.Max.Y}, c.Max, {X: c.Max.X, Y: c.Min.Y}}))
	}
	mid := (c.Min.Y + c.Max.Y) / 2
	if t.line != nil {
		c.StrokeLine2(*t.line, c.Min.X, mid, c.Max.X, mid)
	}
	if t.glyph != nil {
		c.DrawGlyphNoClip(*t.glyph, vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: mid})
	}
}
