package plot

import (
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
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
}

// Bars is a BarChart of the given series over categories, with the
// default size.
func Bars(title, ylabel string, categories []string, series ...BarSeries) BarChart {
	return BarChart{Title: title, YLabel: ylabel, Categories: categories, Series: series}
}

// PNG renders the chart and writes it as PNG.
func (b BarChart) PNG(w io.Writer) error {
	img, err := b.Image()
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("encode bar chart: %w", err)
	}
	return nil
}

// Image renders the chart.
func (b BarChart) Image() (*image.RGBA, error) {
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
		for _, v := range s.Values {
			if math.IsInf(v, 0) || math.Abs(v) > 1e300 {
				return nil, fmt.Errorf("%w: series %q has a value beyond ±1e300", ErrChart, s.Name)
			}
			if finite(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	cv, err := newCanvas(b.Width, b.Height)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChart, err)
	}
	var names []string
	if len(b.Series) > 1 || b.Series[0].Name != "" {
		for _, s := range b.Series {
			names = append(names, s.Name)
		}
	}
	fr := cv.frame(b.Title, b.XLabel, b.YLabel, b.Footnote, names)
	// Headroom for the value labels over the tallest bar.
	if lo == 0 && hi == 0 {
		hi = 1 // all zero (or all n/a): show a positive axis
	}
	span := hi - lo
	if b.YMax == nil && hi > 0 {
		hi += span * 0.06
	}
	if b.YMin == nil && lo < 0 {
		lo -= span * 0.06
	}
	lo, hi, step := yAxis(lo, hi, b.YMin, b.YMax, max(3, min(10, fr.plot.Dy()/(3*lineHeight(cv.small)))))
	fr.yTicks(cv, lo, hi, step)
	py := func(v float64) float64 {
		v = math.Min(hi, math.Max(lo, v))
		return float64(fr.plot.Max.Y) - (v-lo)/(hi-lo)*float64(fr.plot.Dy())
	}
	base := py(math.Min(hi, math.Max(lo, 0)))

	n, m := len(b.Categories), len(b.Series)
	slot := float64(fr.plot.Dx()) / float64(n)
	group := slot * 0.78
	barW := group / float64(m)
	gap := math.Min(2, barW*0.1)
	sh := lineHeight(cv.small)
	for ci, cat := range b.Categories {
		x0 := float64(fr.plot.Min.X) + slot*float64(ci) + (slot-group)/2
		cx := int(float64(fr.plot.Min.X) + slot*(float64(ci)+0.5))
		cv.vline(cx, fr.plot.Max.Y, fr.plot.Max.Y+fr.tick, axisColor)
		cv.drawText(cv.small, fit(cv.small, cat, int(slot)-4), cx, fr.plot.Max.Y+fr.tick+2, alignCenter, ink)
		for si, s := range b.Series {
			v := s.Values[ci]
			l := int(math.Round(x0 + barW*float64(si) + gap/2))
			r := int(math.Round(x0 + barW*float64(si+1) - gap/2))
			if r <= l {
				r = l + 1
			}
			mid := (l + r) / 2
			if !finite(v) {
				cv.drawText(cv.small, "n/a", mid, int(base)-sh-2, alignCenter, muted)
				continue
			}
			top, bot := py(v), base
			if top > bot {
				top, bot = bot, top
			}
			cv.fillRect(image.Rect(l, int(math.Round(top)), r, int(math.Round(bot))), seriesColor(si))
			label := formatValue(v)
			if textWidth(cv.small, label) <= r-l+int(gap)+sh/2 {
				y := int(top) - sh - 2
				if v < 0 {
					y = int(bot) + 2
				}
				if y >= fr.plot.Min.Y-sh && y+sh <= fr.plot.Max.Y+sh {
					cv.drawText(cv.small, label, mid, y, alignCenter, ink)
				}
			}
		}
	}
	// The zero line, over the bars' feet.
	cv.hline(fr.plot.Min.X, fr.plot.Max.X, int(math.Round(base)), axisColor)
	fr.axes(cv)
	fr.legend(cv, names, 0, 0, true)
	return cv.img, nil
}
