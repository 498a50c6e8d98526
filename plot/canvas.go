package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// Default and limiting sizes, in pixels.
const (
	DefaultWidth, DefaultHeight = 960, 540
	MinWidth, MinHeight         = 320, 240
	MaxWidth, MaxHeight         = 8192, 8192
)

var (
	white     = color.RGBA{255, 255, 255, 255}
	ink       = color.RGBA{34, 34, 34, 255}
	axisColor = color.RGBA{90, 90, 90, 255}
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

func seriesColor(i int) color.RGBA { return palette[i%len(palette)] }

var fonts struct {
	once          sync.Once
	regular, bold *opentype.Font
	err           error
}

func loadFonts() error {
	fonts.once.Do(func() {
		if fonts.regular, fonts.err = opentype.Parse(goregular.TTF); fonts.err != nil {
			return
		}
		fonts.bold, fonts.err = opentype.Parse(gobold.TTF)
	})
	if fonts.err != nil {
		return fmt.Errorf("load fonts: %w", fonts.err)
	}
	return nil
}

// canvas is an image with the faces sized for it.
type canvas struct {
	img                  *image.RGBA
	text, small, heading font.Face
}

func newCanvas(w, h int) (*canvas, error) {
	if w == 0 && h == 0 {
		w, h = DefaultWidth, DefaultHeight
	}
	if w < MinWidth || h < MinHeight || w > MaxWidth || h > MaxHeight {
		return nil, fmt.Errorf("size %dx%d is outside %dx%d..%dx%d pixels", w, h, MinWidth, MinHeight, MaxWidth, MaxHeight)
	}
	if err := loadFonts(); err != nil {
		return nil, err
	}
	// Text grows with the picture but stays readable when small.
	base := math.Max(12, math.Min(float64(w)/60, float64(h)/34))
	face := func(f *opentype.Font, size float64) (font.Face, error) {
		return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	}
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	var err error
	if c.text, err = face(fonts.regular, base); err != nil {
		return nil, fmt.Errorf("font face: %w", err)
	}
	if c.small, err = face(fonts.regular, base*0.85); err != nil {
		return nil, fmt.Errorf("font face: %w", err)
	}
	if c.heading, err = face(fonts.bold, base*1.35); err != nil {
		return nil, fmt.Errorf("font face: %w", err)
	}
	draw.Draw(c.img, c.img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	return c, nil
}

func (c *canvas) w() int { return c.img.Bounds().Dx() }
func (c *canvas) h() int { return c.img.Bounds().Dy() }

// lineHeight is the face's ascent plus descent in pixels.
func lineHeight(f font.Face) int {
	m := f.Metrics()
	return (m.Ascent + m.Descent).Ceil()
}

func ascent(f font.Face) int { return f.Metrics().Ascent.Ceil() }

func textWidth(f font.Face, s string) int { return font.MeasureString(f, s).Ceil() }

// fit shortens s with an ellipsis until it is at most max pixels wide.
func fit(f font.Face, s string, max int) string {
	if textWidth(f, s) <= max {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && textWidth(f, string(r)+"…") > max {
		r = r[:len(r)-1]
	}
	if len(r) == 0 {
		return ""
	}
	return string(r) + "…"
}

// Alignments for drawText: the anchor is the left, centre or right of the
// text, and its top.
const (
	alignLeft = iota
	alignCenter
	alignRight
)

func (c *canvas) drawText(f font.Face, s string, x, top int, align int, col color.Color) {
	switch align {
	case alignCenter:
		x -= textWidth(f, s) / 2
	case alignRight:
		x -= textWidth(f, s)
	}
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: f,
		Dot: fixed.P(x, top+ascent(f))}
	d.DrawString(s)
}

// drawTextUp draws s rotated a quarter turn anticlockwise, centred on
// (cx, cy): the usual y-axis label.
func (c *canvas) drawTextUp(f font.Face, s string, cx, cy int, col color.Color) {
	w, h := textWidth(f, s), lineHeight(f)
	if w == 0 {
		return
	}
	tmp := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(tmp, tmp.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	d := font.Drawer{Dst: tmp, Src: image.NewUniform(col), Face: f, Dot: fixed.P(0, ascent(f))}
	d.DrawString(s)
	x0, y0 := cx-h/2, cy-w/2
	for y := range h {
		for x := range w {
			// (x, y) in the text goes to (y, w-1-x) when turned anticlockwise.
			px, py := x0+y, y0+w-1-x
			if image.Pt(px, py).In(c.img.Bounds()) {
				c.img.SetRGBA(px, py, tmp.RGBAAt(x, y))
			}
		}
	}
}

func (c *canvas) hline(x0, x1, y int, col color.RGBA) {
	for x := max(x0, 0); x <= min(x1, c.w()-1); x++ {
		if y >= 0 && y < c.h() {
			c.img.SetRGBA(x, y, col)
		}
	}
}

func (c *canvas) vline(x, y0, y1 int, col color.RGBA) {
	for y := max(y0, 0); y <= min(y1, c.h()-1); y++ {
		if x >= 0 && x < c.w() {
			c.img.SetRGBA(x, y, col)
		}
	}
}

func (c *canvas) fillRect(r image.Rectangle, col color.RGBA) {
	draw.Draw(c.img, r.Intersect(c.img.Bounds()), image.NewUniform(col), image.Point{}, draw.Over)
}

type pt struct{ x, y float64 }

// shapes accumulates anti-aliased polygons of one colour and paints them
// in one pass. Every polygon is added with the same orientation, so
// overlaps merge instead of cancelling.
type shapes struct {
	z     *vector.Rasterizer
	clip  image.Rectangle // within the image
	empty bool
}

// shapes starts a set of polygons painted only inside clip.
func (c *canvas) shapes(clip image.Rectangle) *shapes {
	clip = clip.Intersect(c.img.Bounds())
	// The rasterizer's origin lands on clip.Min when painted.
	return &shapes{z: vector.NewRasterizer(max(clip.Dx(), 1), max(clip.Dy(), 1)), clip: clip, empty: clip.Empty()}
}

func (s *shapes) polygon(p []pt) {
	if len(p) < 3 {
		return
	}
	var area float64
	for i := range p {
		j := (i + 1) % len(p)
		area += p[i].x*p[j].y - p[j].x*p[i].y
	}
	if area == 0 || s.clip.Empty() || math.IsNaN(area) {
		return
	}
	// The rasterizer works in fixed point: keep coordinates near the
	// picture (callers clip lines; this guards everything else).
	for _, q := range p {
		if !(math.Abs(q.x) < 1e5 && math.Abs(q.y) < 1e5) {
			return
		}
	}
	if area < 0 {
		for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
			p[i], p[j] = p[j], p[i]
		}
	}
	ox, oy := float64(s.clip.Min.X), float64(s.clip.Min.Y)
	s.z.MoveTo(float32(p[0].x-ox), float32(p[0].y-oy))
	for _, q := range p[1:] {
		s.z.LineTo(float32(q.x-ox), float32(q.y-oy))
	}
	s.z.ClosePath()
	s.empty = false
}

func (s *shapes) circle(cx, cy, r float64) {
	n := max(12, int(r*4))
	p := make([]pt, n)
	for i := range p {
		a := 2 * math.Pi * float64(i) / float64(n)
		p[i] = pt{cx + r*math.Cos(a), cy + r*math.Sin(a)}
	}
	s.polygon(p)
}

// segment strokes a line of width lw with round ends, clipped to
// (a margin around) the shapes' clip rectangle.
func (s *shapes) segment(a, b pt, lw float64) {
	r := s.clip.Inset(-int(math.Ceil(lw)) - 2)
	var ok bool
	if a, b, ok = clipSegment(a, b, float64(r.Min.X), float64(r.Min.Y), float64(r.Max.X), float64(r.Max.Y)); !ok {
		return
	}
	dx, dy := b.x-a.x, b.y-a.y
	l := math.Hypot(dx, dy)
	if l > 0 {
		nx, ny := -dy/l*lw/2, dx/l*lw/2
		s.polygon([]pt{{a.x + nx, a.y + ny}, {b.x + nx, b.y + ny}, {b.x - nx, b.y - ny}, {a.x - nx, a.y - ny}})
	}
	s.circle(a.x, a.y, lw/2)
	s.circle(b.x, b.y, lw/2)
}

func (s *shapes) paint(dst *image.RGBA, col color.RGBA) {
	if s.empty {
		return
	}
	s.z.Draw(dst, s.clip, image.NewUniform(col), image.Point{})
}

// marker adds marker shape k (circle, square, triangle, diamond, inverted
// triangle) of radius r at (x, y).
func (s *shapes) marker(k int, x, y, r float64) {
	switch k % 5 {
	case 0:
		s.circle(x, y, r)
	case 1:
		r *= 0.88
		s.polygon([]pt{{x - r, y - r}, {x + r, y - r}, {x + r, y + r}, {x - r, y + r}})
	case 2:
		r *= 1.2
		s.polygon([]pt{{x, y - r}, {x + r*0.866, y + r*0.5}, {x - r*0.866, y + r*0.5}})
	case 3:
		r *= 1.25
		s.polygon([]pt{{x, y - r}, {x + r, y}, {x, y + r}, {x - r, y}})
	case 4:
		r *= 1.2
		s.polygon([]pt{{x, y + r}, {x - r*0.866, y - r*0.5}, {x + r*0.866, y - r*0.5}})
	}
}

// clipSegment is Liang and Barsky's clipping of segment a-b to the box
// [x0, x1] x [y0, y1]; ok is false when nothing of it is inside.
func clipSegment(a, b pt, x0, y0, x1, y1 float64) (pt, pt, bool) {
	if !finite(a.x) || !finite(a.y) || !finite(b.x) || !finite(b.y) {
		return a, b, false
	}
	t0, t1 := 0.0, 1.0
	dx, dy := b.x-a.x, b.y-a.y
	for _, e := range [4][2]float64{{-dx, a.x - x0}, {dx, x1 - a.x}, {-dy, a.y - y0}, {dy, y1 - a.y}} {
		p, q := e[0], e[1]
		if p == 0 {
			if q < 0 {
				return a, b, false
			}
			continue
		}
		t := q / p
		if p < 0 {
			t0 = math.Max(t0, t)
		} else {
			t1 = math.Min(t1, t)
		}
		if t0 > t1 {
			return a, b, false
		}
	}
	return pt{a.x + t0*dx, a.y + t0*dy}, pt{a.x + t1*dx, a.y + t1*dy}, true
}
