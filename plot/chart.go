package plot

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
)

// Series is one line: Y[i] is drawn at X[i], in the order given.
type Series struct {
	Name string
	X, Y []float64
}

// Chart is a line chart, for example a metric per round per site.
type Chart struct {
	Title, XLabel, YLabel string
	// YMin and YMax fix the value axis (e.g. 0 and 1 for AUC); nil picks
	// round numbers around the data. Points outside are clipped.
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

// Ref is a dashed horizontal line at Y, labelled at its right end, for
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
	img, err := c.Image()
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("encode chart: %w", err)
	}
	return nil
}

func checkRange(lo, hi *float64) error {
	if lo != nil && !finite(*lo) || hi != nil && !finite(*hi) {
		return fmt.Errorf("%w: axis bounds must be finite numbers", ErrChart)
	}
	if lo != nil && hi != nil && *lo >= *hi {
		return fmt.Errorf("%w: YMin %v is not below YMax %v", ErrChart, *lo, *hi)
	}
	return nil
}

// Image renders the chart.
func (c Chart) Image() (*image.RGBA, error) {
	if len(c.Series) == 0 {
		return nil, fmt.Errorf("%w %q: no series to draw", ErrChart, c.Title)
	}
	if err := checkRange(c.YMin, c.YMax); err != nil {
		return nil, err
	}
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	integerX := true
	for _, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("%w: series %q has %d x values and %d y values", ErrChart, s.Name, len(s.X), len(s.Y))
		}
		for i := range s.X {
			if !finite(s.X[i]) || !finite(s.Y[i]) {
				continue
			}
			xlo, xhi = math.Min(xlo, s.X[i]), math.Max(xhi, s.X[i])
			ylo, yhi = math.Min(ylo, s.Y[i]), math.Max(yhi, s.Y[i])
			integerX = integerX && s.X[i] == math.Trunc(s.X[i])
		}
	}
	if xlo > xhi {
		return nil, fmt.Errorf("%w %q: no finite points to draw", ErrChart, c.Title)
	}
	for _, r := range c.Refs {
		if !finite(r.Y) {
			return nil, fmt.Errorf("%w: reference line %q is not at a finite value", ErrChart, r.Label)
		}
		ylo, yhi = math.Min(ylo, r.Y), math.Max(yhi, r.Y)
	}
	if !finite(xhi-xlo) || !finite(yhi-ylo) || math.Abs(xlo) > 1e300 || math.Abs(xhi) > 1e300 || math.Abs(ylo) > 1e300 || math.Abs(yhi) > 1e300 {
		return nil, fmt.Errorf("%w %q: values beyond ±1e300 cannot be plotted", ErrChart, c.Title)
	}
	cv, err := newCanvas(c.Width, c.Height)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChart, err)
	}
	if xlo == xhi {
		xlo, xhi = xlo-1, xhi+1
	}

	names := make([]string, len(c.Series))
	for i, s := range c.Series {
		names[i] = s.Name
	}
	fr := cv.frame(c.Title, c.XLabel, c.YLabel, c.Footnote, names)
	ylo, yhi, ystep := yAxis(ylo, yhi, c.YMin, c.YMax, max(3, min(10, fr.plot.Dy()/(3*lineHeight(cv.small)))))
	fr.yTicks(cv, ylo, yhi, ystep)

	// X: ticks at round numbers within the data; whole rounds stay whole.
	labelW := max(textWidth(cv.small, formatTick(xlo, 1)), textWidth(cv.small, formatTick(xhi, 1))) + lineHeight(cv.small)*2
	xstep := niceStep(xhi-xlo, max(2, min(12, fr.plot.Dx()/max(labelW, 1))))
	if integerX && xstep < 1 {
		xstep = 1
	}
	inset := float64(lineHeight(cv.small)) * 0.8
	px := func(v float64) float64 {
		return float64(fr.plot.Min.X) + inset + (v-xlo)/(xhi-xlo)*(float64(fr.plot.Dx())-2*inset)
	}
	py := func(v float64) float64 {
		return float64(fr.plot.Max.Y) - (v-ylo)/(yhi-ylo)*float64(fr.plot.Dy())
	}
	for _, v := range ticks(xlo, xhi, xstep) {
		x := int(math.Round(px(v)))
		cv.vline(x, fr.plot.Min.Y, fr.plot.Max.Y, gridColor)
		cv.vline(x, fr.plot.Max.Y, fr.plot.Max.Y+fr.tick, axisColor)
		cv.drawText(cv.small, formatTick(v, xstep), x, fr.plot.Max.Y+fr.tick+2, alignCenter, ink)
	}
	fr.axes(cv)

	lw := math.Max(2, float64(lineHeight(cv.text))/8)
	for _, ref := range c.Refs {
		if ref.Y < ylo || ref.Y > yhi {
			continue // outside the caller's fixed axis
		}
		y := py(ref.Y)
		dash := cv.shapes(fr.plot)
		step := 3 * lw * 2
		for x := float64(fr.plot.Min.X); x < float64(fr.plot.Max.X); x += step {
			dash.segment(pt{x, y}, pt{math.Min(x+step*0.55, float64(fr.plot.Max.X)), y}, lw*0.75)
		}
		dash.paint(cv.img, muted)
	}
	r := lw * 1.9
	clip := fr.plot.Inset(-int(math.Ceil(r + 2)))
	for i, s := range c.Series {
		col := seriesColor(i)
		line := cv.shapes(clip)
		var prev *pt
		pts := make([]pt, 0, len(s.X))
		for k := range s.X {
			if !finite(s.X[k]) || !finite(s.Y[k]) {
				prev = nil // a gap
				continue
			}
			p := pt{px(s.X[k]), py(s.Y[k])}
			if prev != nil {
				line.segment(*prev, p, lw)
			}
			prev = &p
			pts = append(pts, p)
		}
		line.paint(cv.img, col)
		// Markers, with a white halo, unless the series is too dense.
		if len(pts) <= fr.plot.Dx()/int(4*r) || len(pts) == 1 {
			halo, mark := cv.shapes(clip), cv.shapes(clip)
			for _, p := range pts {
				halo.marker(i, p.x, p.y, r+lw*0.7)
				mark.marker(i, p.x, p.y, r)
			}
			halo.paint(cv.img, white)
			mark.paint(cv.img, col)
		}
	}
	// Reference labels last, on a white ground, so no line hides them.
	sh := lineHeight(cv.small)
	for _, ref := range c.Refs {
		if ref.Label == "" || ref.Y < ylo || ref.Y > yhi {
			continue
		}
		label := fit(cv.small, ref.Label, fr.plot.Dx()/2)
		x, y := fr.plot.Min.X+int(inset), int(py(ref.Y))-sh-3
		if y < fr.plot.Min.Y {
			y = int(py(ref.Y)) + 3 // at the top edge: below the line instead
		}
		cv.fillRect(image.Rect(x-3, y, x+textWidth(cv.small, label)+3, y+sh), white)
		cv.drawText(cv.small, label, x, y, alignLeft, muted)
	}
	fr.legend(cv, names, lw, r, false)
	return cv.img, nil
}
