package plot

import (
	"image"
	"math"
)

// frame is the layout shared by both chart kinds: title, plot area, axis
// labels, legend and footnote.
type frame struct {
	plot       image.Rectangle
	legendX    int // left edge of the legend; 0 when there is none
	tick, pad  int
	xlab, ylab string
	xlabY      int // top of the x label
}

func (cv *canvas) frame(title, xlab, ylab, footnote string, legend []string) *frame {
	W, H := cv.w(), cv.h()
	lh := lineHeight(cv.text)
	f := &frame{pad: lh, tick: max(4, lh/3), xlab: xlab, ylab: ylab}
	top := f.pad
	if title != "" {
		top += lineHeight(cv.heading) + f.pad/2
	} else {
		top += f.pad / 2
	}
	bottom := H - f.pad - f.tick - 2 - lineHeight(cv.small)
	if xlab != "" {
		bottom -= lh + f.pad/2
	}
	if footnote != "" {
		bottom -= lineHeight(cv.small) + f.pad/2
	}
	left := f.pad
	if ylab != "" {
		left += lh + f.pad/2
	}
	left += f.tick + 4 // y tick labels are added by yTicks
	right := W - f.pad
	show := false
	for _, n := range legend {
		show = show || n != ""
	}
	if show {
		maxW := 0
		for _, n := range legend {
			maxW = max(maxW, textWidth(cv.small, n))
		}
		sample := 3 * lh
		lw := min(sample+maxW, W*3/10)
		f.legendX = W - f.pad - lw
		right = f.legendX - f.pad
	}
	f.plot = image.Rect(left, top, right, bottom)

	if title != "" {
		cv.drawText(cv.heading, fit(cv.heading, title, W-2*f.pad), f.pad, f.pad, alignLeft, ink)
	}
	y := bottom + f.tick + 2 + lineHeight(cv.small) + f.pad/2
	if xlab != "" {
		f.xlabY = y
		y += lh + f.pad/2
	}
	if footnote != "" {
		cv.drawText(cv.small, fit(cv.small, footnote, W-2*f.pad), f.pad, y, alignLeft, muted)
	}
	return f
}

// yTicks makes room for the value labels, then draws them with their
// gridlines.
func (f *frame) yTicks(cv *canvas, lo, hi, step float64) {
	ts := ticks(lo, hi, step)
	labels := make([]string, len(ts))
	wmax := 0
	for i, v := range ts {
		labels[i] = formatTick(v, step)
		wmax = max(wmax, textWidth(cv.small, labels[i]))
	}
	f.plot.Min.X += wmax
	if f.ylab != "" {
		cx := f.pad + lineHeight(cv.text)/2
		cv.drawTextUp(cv.text, fit(cv.text, f.ylab, f.plot.Dy()), cx, (f.plot.Min.Y+f.plot.Max.Y)/2, ink)
	}
	sh := lineHeight(cv.small)
	for i, v := range ts {
		y := int(math.Round(float64(f.plot.Max.Y) - (v-lo)/(hi-lo)*float64(f.plot.Dy())))
		cv.hline(f.plot.Min.X, f.plot.Max.X, y, gridColor)
		cv.hline(f.plot.Min.X-f.tick, f.plot.Min.X, y, axisColor)
		cv.drawText(cv.small, labels[i], f.plot.Min.X-f.tick-4, y-sh/2, alignRight, ink)
	}
}

// axes draws the axis lines and the x label centred under the plot; call
// it after yTicks, which moves the plot's left edge.
func (f *frame) axes(cv *canvas) {
	cv.hline(f.plot.Min.X, f.plot.Max.X, f.plot.Max.Y, axisColor)
	cv.vline(f.plot.Min.X, f.plot.Min.Y, f.plot.Max.Y, axisColor)
	if f.xlab != "" {
		cv.drawText(cv.text, fit(cv.text, f.xlab, cv.w()-2*f.pad), (f.plot.Min.X+f.plot.Max.X)/2, f.xlabY, alignCenter, ink)
	}
}

// legend lists the series beside the plot: a line sample with the
// series' marker, or a colour swatch for bars.
func (f *frame) legend(cv *canvas, names []string, lw, r float64, swatch bool) {
	if f.legendX == 0 {
		return
	}
	lh := lineHeight(cv.text)
	sample := 3 * lh
	y := f.plot.Min.Y
	for i, n := range names {
		col := seriesColor(i)
		cy := float64(y) + float64(lineHeight(cv.small))/2
		x0 := float64(f.legendX)
		if swatch {
			s := lineHeight(cv.small) * 3 / 4
			cv.fillRect(image.Rect(f.legendX+lh/2, int(cy)-s/2, f.legendX+lh/2+2*s, int(cy)-s/2+s), col)
		} else {
			// Rasterizers as small as the entry: one per picture would
			// cost a buffer the size of the picture.
			box := image.Rect(f.legendX, y-lh/2, f.legendX+sample, y+lineHeight(cv.small)+lh/2)
			line := cv.shapes(box)
			line.segment(pt{x0 + 2, cy}, pt{x0 + float64(sample-lh), cy}, lw)
			line.paint(cv.img, col)
			halo, mark := cv.shapes(box), cv.shapes(box)
			mx := x0 + float64(sample-lh)/2
			halo.marker(i, mx, cy, r+lw*0.7)
			mark.marker(i, mx, cy, r)
			halo.paint(cv.img, white)
			mark.paint(cv.img, col)
		}
		avail := cv.w() - f.pad - f.legendX - sample
		cv.drawText(cv.small, fit(cv.small, n, avail), f.legendX+sample, y, alignLeft, ink)
		y += lineHeight(cv.small) * 3 / 2
		if y > f.plot.Max.Y {
			break
		}
	}
}
