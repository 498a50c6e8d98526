package plot

import (
	"fmt"
	"image"
	"io"
	"math"
	"strconv"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// BarChart is a grouped bar chart: one group per category (a site), one
// bar per series in each group (a metric, or a model version).
type BarChart struct {
	Title, XLabel, YLabel string
	Categories            []string
	Series                []BarSeries
	// YMin and YMax fix the value axis; nil includes zero and the data.
	YMin, YMax    *float64
	Width, Height int // both zero means 960x540
	Footnote      string
}

// BarSeries holds one value per category; NaN marks a missing value,
// drawn as "n/a".
type BarSeries struct {
	Name   string
	Values []float64
	// Lower and Upper, when given (one per value), are an interval around
	// each value (a 95% confidence interval), drawn as a whisker; NaN
	// draws none for that value.
	Lower, Upper []float64
}

// Bars is a BarChart of the given series over categories, with the
// default size.
func Bars(title, ylabel string, categories []string, series ...BarSeries) BarChart {
	return BarChart{Title: title, YLabel: ylabel, Categories: categories, Series: series}
}

// PNG renders the chart and writes it as PNG.
func (b BarChart) PNG(w io.Writer) error {
	img, err := b.image()
	if err != nil {
		return err
	}
	return encode(w, img, "bar chart")
}

func (b BarChart) image() (*image.RGBA, error) {
	if len(b.Categories) == 0 {
		return nil, fmt.Errorf("%w %q: no categories", ErrChart, b.Title)
	}
	if len(b.Series) == 0 {
		return nil, fmt.Errorf("%w %q: no series", ErrChart, b.Title)
	}
	if err := checkRange(b.YMin, b.YMax); err != nil {
		return nil, err
	}
	lo, hi := 0.0, 0.0
	for _, s := range b.Series {
		if len(s.Values) != len(b.Categories) {
			return nil, fmt.Errorf("%w: series %q has %d values for %d categories", ErrChart, s.Name, len(s.Values), len(b.Categories))
		}
		if s.Lower != nil || s.Upper != nil {
			if len(s.Lower) != len(s.Values) || len(s.Upper) != len(s.Values) {
				return nil, fmt.Errorf("%w: series %q has %d values, %d lower and %d upper bounds", ErrChart, s.Name, len(s.Values), len(s.Lower), len(s.Upper))
			}
		}
		for _, vs := range [][]float64{s.Values, s.Lower, s.Upper} {
			for _, v := range vs {
				if math.IsInf(v, 0) || math.Abs(v) > limit {
					return nil, fmt.Errorf("%w: series %q has a value beyond ±1e200", ErrChart, s.Name)
				}
				if finite(v) {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	w, h, err := pictureSize(b.Width, b.Height)
	if err != nil {
		return nil, err
	}
	if lo == 0 && hi == 0 {
		hi = 1 // all zero (or all n/a): show a positive axis
	}
	// Headroom for the value labels over the tallest bar.
	span := hi - lo
	if b.YMax == nil && hi > 0 {
		hi += span * 0.08
	}
	if b.YMin == nil && lo < 0 {
		lo -= span * 0.08
	}
	lo, hi = yAxis(lo, hi, b.YMin, b.YMax)

	p := newPlot(b.Title, b.XLabel, b.YLabel, false)
	n, m := len(b.Categories), len(b.Series)
	// Category names fit their slot, taking the plot as 80% of the picture.
	slot := vg.Length(w) * vg.Inch / vg.Length(dpi(w, h)) * 0.8 / vg.Length(n)
	names := make([]string, n)
	for i, c := range b.Categories {
		names[i] = fit(p.X.Tick.Label, c, slot-vg.Points(4))
	}
	p.NominalX(names...)
	p.Y.Tick.Marker = ticks{max: h / 35}
	l := newLegend(w, h)
	for si, s := range b.Series {
		vals := make(plotter.Values, n)
		labels := plotter.XYLabels{XYs: make(plotter.XYs, n), Labels: make([]string, n)}
		styles := make([]text.Style, n)
		for ci, v := range s.Values {
			sty := p.X.Tick.Label
			sty.XAlign, sty.YAlign = draw.XCenter, draw.YBottom
			label := "n/a"
			switch {
			case !finite(v):
				sty.Color = muted
			case v < 0:
				sty.YAlign = draw.YTop
				fallthrough
			default:
				label = formatValue(v)
				vals[ci] = v
			}
			at := vals[ci]
			if s.Upper != nil && finite(v) && finite(s.Upper[ci]) && v >= 0 {
				at = math.Max(at, s.Upper[ci]) // above the whisker
			}
			labels.XYs[ci] = plotter.XY{X: float64(ci), Y: math.Min(hi, math.Max(lo, at))}
			labels.Labels[ci], styles[ci] = label, sty
		}
		bars, err := plotter.NewBarChart(vals, 1) // the width is set when drawn
		if err != nil {
			return nil, fmt.Errorf("%w: series %q: %w", ErrChart, s.Name, err)
		}
		bars.Color = seriesColor(si)
		bars.LineStyle.Width = 0
		lab, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, fmt.Errorf("%w: series %q: %w", ErrChart, s.Name, err)
		}
		lab.TextStyle = styles
		p.Add(barGroup{bars: bars, labels: lab, i: si, m: m, lower: s.Lower, upper: s.Upper})
		if m > 1 || s.Name != "" {
			l.add(s.Name, thumb{fill: seriesColor(si)})
		}
	}
	// One slot per category, so that the outer bars need no padding.
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.Y.Min, p.Y.Max = lo, hi
	return frame(p, l, b.Footnote, w, h)
}

// barGroup is series i of m: its bars take their share of 78% of each
// category's slot, sized when the plot area is known, with their values
// over them where the labels fit the bars.
type barGroup struct {
	bars         *plotter.BarChart
	labels       *plotter.Labels
	i, m         int
	lower, upper []float64
}

func (g barGroup) Plot(c draw.Canvas, p *gplot.Plot) {
	trX, _ := p.Transforms(&c)
	share := (trX(1) - trX(0)) * 0.78 / vg.Length(g.m)
	g.bars.Width = share * 0.92
	g.bars.Offset = share * (vg.Length(g.i) - vg.Length(g.m-1)/2)
	g.bars.Plot(c, p)
	g.whiskers(c, p)
	for k, t := range g.labels.Labels {
		if t != "n/a" && g.labels.TextStyle[k].Width(t) > share*1.3 {
			return // no room: the axis still tells the values
		}
	}
	g.labels.Offset = vg.Point{X: g.bars.Offset}
	if g.upper != nil {
		g.labels.Offset.Y = vg.Points(2) // clear of the whisker's cap
	}
	g.labels.Plot(c, p)
}

// whiskers draws each interval as a vertical line with caps, centred on
// its bar, clipped to the plot.
func (g barGroup) whiskers(c draw.Canvas, p *gplot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := draw.LineStyle{Color: ink, Width: vg.Points(1.25)}
	clip := func(v float64) float64 { return math.Min(p.Y.Max, math.Max(p.Y.Min, v)) }
	for k := range g.lower {
		lo, hi := g.lower[k], g.upper[k]
		if !finite(lo) || !finite(hi) {
			continue
		}
		x := trX(float64(k)) + g.bars.Offset
		y0, y1 := trY(clip(lo)), trY(clip(hi))
		cap := g.bars.Width / 4
		c.StrokeLine2(sty, x, y0, x, y1)
		c.StrokeLine2(sty, x-cap, y0, x+cap, y0)
		c.StrokeLine2(sty, x-cap, y1, x+cap, y1)
	}
}

// formatValue prints a bar's value with about three significant digits.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e7:
		return strconv.FormatFloat(v, 'g', 3, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.01 || a == 0:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}
