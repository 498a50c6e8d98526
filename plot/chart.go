package plot

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one line: Y[i] is drawn at X[i], in the order given.
type Series struct {
	Name string
	X, Y []float64
}

// Chart is a line chart, for example a metric per round per site.
type Chart struct {
	Title, XLabel, YLabel string
	// YMin and YMax fix the value axis (e.g. 0 and 1 for AUC); nil fits
	// the data. Points outside are clipped.
	YMin, YMax *float64
	Series     []Series
	// Refs are horizontal reference lines: a privacy budget, chance level.
	Refs []Ref
	// Width and Height are in pixels; both zero means 960x540.
	Width, Height int
	// Footnote is printed small under the chart: the command that
	// reproduces the figure, or the data's provenance.
	Footnote string
}

// Ref is a dashed horizontal line at Y, labelled at its left end, for
// example {Label: "budget ε = 8", Y: 8}.
type Ref struct {
	Label string
	Y     float64
}

// ErrChart is wrapped by every error about a chart's content.
var ErrChart = errors.New("invalid chart")

// F returns a pointer to v, for Chart.YMin and Chart.YMax.
func F(v float64) *float64 { return &v }

// PNG renders the chart and writes it as PNG.
func (c Chart) PNG(w io.Writer) error {
	img, err := c.image()
	if err != nil {
		return err
	}
	return encode(w, img, "chart")
}

// limit is the largest magnitude drawn: gonum's axis layout loses the
// x axis for spans much beyond it.
const limit = 1e200

// check validates the chart and returns the finite data's extent.
func (c Chart) check() (xlo, xhi, ylo, yhi float64, err error) {
	if len(c.Series) == 0 {
		return 0, 0, 0, 0, fmt.Errorf("%w %q: no series to draw", ErrChart, c.Title)
	}
	if err := checkRange(c.YMin, c.YMax); err != nil {
		return 0, 0, 0, 0, err
	}
	xlo, xhi, ylo, yhi = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return 0, 0, 0, 0, fmt.Errorf("%w: series %q has %d x values and %d y values", ErrChart, s.Name, len(s.X), len(s.Y))
		}
		for i := range s.X {
			if finite(s.X[i]) && finite(s.Y[i]) {
				xlo, xhi = math.Min(xlo, s.X[i]), math.Max(xhi, s.X[i])
				ylo, yhi = math.Min(ylo, s.Y[i]), math.Max(yhi, s.Y[i])
			}
		}
	}
	if xlo > xhi {
		return 0, 0, 0, 0, fmt.Errorf("%w %q: no finite points to draw", ErrChart, c.Title)
	}
	for _, r := range c.Refs {
		if !finite(r.Y) {
			return 0, 0, 0, 0, fmt.Errorf("%w: reference line %q is not at a finite value", ErrChart, r.Label)
		}
		ylo, yhi = math.Min(ylo, r.Y), math.Max(yhi, r.Y)
	}
	for _, v := range []float64{xlo, xhi, ylo, yhi} {
		if math.Abs(v) > limit {
			return 0, 0, 0, 0, fmt.Errorf("%w %q: values beyond ±1e200 cannot be plotted", ErrChart, c.Title)
		}
	}
	return xlo, xhi, ylo, yhi, nil
}

func (c Chart) image() (*image.RGBA, error) {
	xlo, xhi, ylo, yhi, err := c.check()
	if err != nil {
		return nil, err
	}
	w, h, err := pictureSize(c.Width, c.Height)
	if err != nil {
		return nil, err
	}
	p := newPlot(c.Title, c.XLabel, c.YLabel, true)
	p.X.Min, p.X.Max = xlo, xhi
	p.Y.Min, p.Y.Max = yAxis(ylo, yhi, c.YMin, c.YMax)
	// Labels about 80 pixels apart across, 35 up.
	p.X.Tick.Marker = ticks{max: w / 80, whole: whole(c.Series)}
	p.Y.Tick.Marker = ticks{max: h / 35}
	l := newLegend(w, h)
	// Markers only where they stay apart: about one per 12 pixels.
	room := w / 12
	for i, s := range c.Series {
		line := draw.LineStyle{Color: seriesColor(i), Width: vg.Points(2)}
		glyph := draw.GlyphStyle{Color: seriesColor(i), Radius: vg.Points(3.5), Shape: shapes[i%len(shapes)]}
		var all, run plotter.XYs
		flush := func() {
			if len(run) > 1 {
				ln := &plotter.Line{XYs: run, LineStyle: line}
				p.Add(ln)
			}
			run = nil
		}
		for k := range s.X {
			if !finite(s.X[k]) || !finite(s.Y[k]) {
				flush() // a gap
				continue
			}
			run = append(run, plotter.XY{X: s.X[k], Y: s.Y[k]})
			all = append(all, plotter.XY{X: s.X[k], Y: s.Y[k]})
		}
		flush()
		t := thumb{line: &line}
		if len(all) <= room || len(all) == 1 {
			p.Add(&plotter.Scatter{XYs: all, GlyphStyle: glyph})
			t.glyph = &glyph
		}
		l.add(s.Name, t)
	}
	// Adding the plotters widened the axes to all the data; the caller's
	// bounds win.
	p.X.Min, p.X.Max = xlo, xhi
	p.Y.Min, p.Y.Max = yAxis(ylo, yhi, c.YMin, c.YMax)
	c.refs(p)
	return frame(p, l, c.Footnote, w, h)
}

// refs adds the reference lines that lie inside the value axis.
func (c Chart) refs(p *gplot.Plot) {
	for _, r := range c.Refs {
		if r.Y >= p.Y.Min && r.Y <= p.Y.Max {
			p.Add(refLine{r, p.X.Tick.Label})
		}
	}
}

// refLine draws a Ref dashed and grey across the plot, labelled just above
// its left end. It has no glyph boxes, so it never moves the axes.
type refLine struct {
	Ref
	sty text.Style
}

func (r refLine) Plot(c draw.Canvas, p *gplot.Plot) {
	_, trY := p.Transforms(&c)
	y := trY(r.Y)
	dash := draw.LineStyle{Color: muted, Width: vg.Points(1.25), Dashes: []vg.Length{vg.Points(6), vg.Points(4)}}
	c.StrokeLine2(dash, c.Min.X, y, c.Max.X, y)
	if r.Label == "" {
		return
	}
	sty := r.sty
	sty.Color, sty.XAlign, sty.YAlign = muted, draw.XLeft, draw.YBottom
	label := fit(sty, r.Label, c.Size().X/2)
	at := vg.Point{X: c.Min.X + vg.Points(4), Y: y + vg.Points(2)}
	if at.Y+sty.Height(label) > c.Max.Y {
		// At the top edge: below the line instead.
		sty.YAlign = draw.YTop
		at.Y = y - vg.Points(2)
	}
	box := sty.Rectangle(label).Add(at)
	c.SetColor(color.White)
	c.Fill(box.Path())
	c.FillText(sty, at, label)
}

// yAxis is the value axis: the caller's bounds where given, the data's
// elsewhere, never empty.
func yAxis(lo, hi float64, fixLo, fixHi *float64) (float64, float64) {
	if fixLo != nil {
		lo = *fixLo
	}
	if fixHi != nil {
		hi = *fixHi
	}
	if lo >= hi {
		switch {
		case fixLo != nil && fixHi == nil:
			hi = lo + 1
		case fixHi != nil && fixLo == nil:
			lo = hi - 1
		default: // a flat series
			lo, hi = lo-1, hi+1
		}
	}
	return lo, hi
}

// whole reports whether every x is an integer (rounds), so that the x axis
// must not show fractions.
func whole(ss []Series) bool {
	for _, s := range ss {
		for _, x := range s.X {
			if finite(x) && x != math.Trunc(x) {
				return false
			}
		}
	}
	return true
}

// ticks are gonum's default ticks, its minor ticks labelled as well when
// that gives at most max labels (gonum aims at three, too coarse to read a
// metric off), less those between whole numbers when whole is set.
type ticks struct {
	max   int
	whole bool
}

func (t ticks) Ticks(lo, hi float64) []gplot.Tick {
	all := (gplot.DefaultTicks{}).Ticks(lo, hi)
	slices.SortFunc(all, func(a, b gplot.Tick) int { return cmp.Compare(a.Value, b.Value) })
	if t.whole {
		all = slices.DeleteFunc(all, func(k gplot.Tick) bool { return k.Value != math.Trunc(k.Value) })
	}
	if len(all) < 2 || len(all) > t.max {
		return all
	}
	step := all[1].Value - all[0].Value
	d := decimals(step)
	if d < 0 || math.Max(math.Abs(lo), math.Abs(hi)) >= 1e6 {
		return all
	}
	// gonum's minor ticks may stop one step short of the ends.
	if v := all[0].Value - step; v >= lo-step*1e-9 {
		all = slices.Insert(all, 0, gplot.Tick{Value: v})
	}
	if v := all[len(all)-1].Value + step; v <= hi+step*1e-9 {
		all = append(all, gplot.Tick{Value: v})
	}
	for i := range all {
		all[i].Label = strconv.FormatFloat(all[i].Value, 'f', d, 64)
	}
	return all
}

// decimals is how many decimals print step exactly: 1 for 0.5, 2 for 0.25;
// -1 when more than 6 would be needed.
func decimals(step float64) int {
	for d := 0; d <= 6; d++ {
		v := step * math.Pow10(d)
		if math.Abs(v-math.Round(v)) <= 1e-6*v {
			return d
		}
	}
	return -1
}
