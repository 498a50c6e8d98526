package plot

import (
	"bytes"
	"errors"
	"flag"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var white = color.RGBA{255, 255, 255, 255}

var outDir = flag.String("plot.out", "", "also write the test charts as PNG files into this folder, to look at")

func learningCurves() Chart {
	var ss []Series
	for k, name := range []string{"global model", "St Brigid's General", "Northfield University Hospital"} {
		s := Series{Name: name}
		for r := 1; r <= 10; r++ {
			s.X = append(s.X, float64(r))
			s.Y = append(s.Y, 0.5+0.4*(1-math.Exp(-float64(r)/(2+float64(k)))))
		}
		ss = append(ss, s)
	}
	return Chart{Title: "Validation AUC per round", XLabel: "Round", YLabel: "AUC", YMin: F(0.4), YMax: F(1),
		Series: ss, Footnote: "concord-sim --seed 1", Width: 800, Height: 450}
}

func siteBars() BarChart {
	b := Bars("Per-site metrics", "Score", []string{"Site A", "Site B", "Site C"},
		BarSeries{Name: "AUC", Values: []float64{0.91, 0.87, math.NaN()}},
		BarSeries{Name: "Sensitivity", Values: []float64{0.84, 0.8, 0.9}})
	b.Width, b.Height = 640, 400
	return b
}

func render(t *testing.T, name string, png func(*bytes.Buffer) error) (image.Image, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := png(&buf); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	img, err := decode(buf.Bytes())
	if err != nil {
		t.Fatalf("%s: output does not decode as PNG: %v", name, err)
	}
	if *outDir != "" {
		if err := os.WriteFile(filepath.Join(*outDir, name+".png"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img, buf.Bytes()
}

func decode(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }

// colours counts the pixels of each palette colour and of anything not white
// inside r.
func colours(img image.Image, r image.Rectangle) (perSeries map[int]int, ink int) {
	perSeries = map[int]int{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if c != white {
				ink++
			}
			for i, p := range palette {
				if c == p {
					perSeries[i]++
				}
			}
		}
	}
	return perSeries, ink
}

func TestChartPNG(t *testing.T) {
	c := learningCurves()
	img, b1 := render(t, "chart", func(b *bytes.Buffer) error { return c.PNG(b) })
	if img.Bounds() != image.Rect(0, 0, 800, 450) {
		t.Fatalf("chart is %v, want 800x450", img.Bounds())
	}
	// The middle of the picture is the plot area: each series has drawn there.
	per, ink := colours(img, image.Rect(150, 80, 600, 380))
	for i := range c.Series {
		if per[i] < 150 {
			t.Errorf("series %d has %d pixels of its colour in the plot area", i, per[i])
		}
	}
	if ink < 3000 {
		t.Errorf("only %d non-white pixels in the plot area", ink)
	}
	// Title and labels put ink in the top strip and the left margin.
	if _, top := colours(img, image.Rect(0, 0, 800, 40)); top < 200 {
		t.Errorf("title strip has %d inked pixels", top)
	}
	_, b2 := render(t, "chart", func(b *bytes.Buffer) error { return c.PNG(b) })
	if !bytes.Equal(b1, b2) {
		t.Error("the same chart rendered to different bytes")
	}
	c.Series[0].Y[3] += 0.2
	_, b3 := render(t, "chart-changed", func(b *bytes.Buffer) error { return c.PNG(b) })
	if bytes.Equal(b1, b3) {
		t.Error("changing a value did not change the picture")
	}
}

func TestChartDefaultsAndEdgeCases(t *testing.T) {
	nan := math.NaN()
	for name, c := range map[string]Chart{
		"default size":  {Series: []Series{{Name: "a", X: []float64{1, 2, 3}, Y: []float64{3, 1, 2}}}},
		"single point":  {Series: []Series{{X: []float64{5}, Y: []float64{0.7}}}},
		"gap":           {Series: []Series{{Name: "eps", X: []float64{1, 2, 3, 4}, Y: []float64{0.1, nan, 0.3, 0.4}}}},
		"clipped":       {YMin: F(0), YMax: F(1), Series: []Series{{X: []float64{1, 2, 3}, Y: []float64{-5, 0.5, 7}}}},
		"tiny range":    {Series: []Series{{X: []float64{0, 1e-9}, Y: []float64{1e-12, 3e-12}}}},
		"huge values":   {Series: []Series{{X: []float64{-1e199, 1e199}, Y: []float64{-1e199, 1e199}}}},
		"flat":          {Series: []Series{{X: []float64{1, 2}, Y: []float64{0, 0}}}},
		"only ymin":     {YMin: F(0), Series: []Series{{X: []float64{1, 2}, Y: []float64{2, 3}}}},
		"ymax below":    {YMax: F(-10), Series: []Series{{X: []float64{1, 2}, Y: []float64{2, 3}}}},
		"dense":         {Series: []Series{dense(5000)}},
		"many series":   {Series: manySeries(12)},
		"long names":    {Title: string(bytes.Repeat([]byte("very long title "), 20)), Series: []Series{{Name: string(bytes.Repeat([]byte("x"), 500)), X: []float64{1, 2}, Y: []float64{1, 2}}}},
		"large picture": {Width: 2400, Height: 1350, Series: manySeries(3)},
		"small picture": {Width: MinWidth, Height: MinHeight, Title: "t", XLabel: "x", YLabel: "y", Series: manySeries(3)},
	} {
		want := image.Rect(0, 0, c.Width, c.Height)
		if c.Width == 0 {
			want = image.Rect(0, 0, DefaultWidth, DefaultHeight)
		}
		img, _ := render(t, "edge-"+name, func(b *bytes.Buffer) error { return c.PNG(b) })
		if img.Bounds() != want {
			t.Errorf("%s: %v, want %v", name, img.Bounds(), want)
		}
		if per, _ := colours(img, img.Bounds()); per[0] == 0 && name != "ymax below" {
			t.Errorf("%s: the first series left no pixel of its colour", name)
		}
	}
}

func dense(n int) Series {
	s := Series{Name: "dense"}
	for i := range n {
		s.X = append(s.X, float64(i))
		s.Y = append(s.Y, math.Sin(float64(i)/50))
	}
	return s
}

func manySeries(n int) []Series {
	var out []Series
	for k := range n {
		s := Series{Name: string(rune('A' + k))}
		for r := range 8 {
			s.X = append(s.X, float64(r))
			s.Y = append(s.Y, float64(k)+math.Sqrt(float64(r)))
		}
		out = append(out, s)
	}
	return out
}

func TestChartRefs(t *testing.T) {
	c := Chart{Width: 640, Height: 400, YMin: F(0), Series: []Series{{Name: "eps", X: []float64{1, 2, 3}, Y: []float64{1, 2, 3}}},
		Refs: []Ref{{Label: "budget ε = 8.0", Y: 8}, {Label: "never shown", Y: -5}}}
	if _, data := render(t, "refs", func(b *bytes.Buffer) error { return c.PNG(b) }); len(data) == 0 {
		t.Fatal("empty chart with an automatic axis")
	}
	// The budget lies above the data, so the automatic axis reaches it; the
	// dashed line and its label are what differs from the same chart
	// without them on that axis.
	bare := c
	bare.Refs = nil
	bare.YMax = F(10)
	c.YMax = F(10)
	img, _ := render(t, "refs", func(b *bytes.Buffer) error { return c.PNG(b) })
	without, _ := render(t, "refs-bare", func(b *bytes.Buffer) error { return bare.PNG(b) })
	greyRows := map[int]int{}
	for y := 0; y < 400; y++ {
		for x := 0; x < 640; x++ {
			a := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if a != color.RGBAModel.Convert(without.At(x, y)).(color.RGBA) && a.R == a.G && a.G == a.B {
				greyRows[y]++
			}
		}
	}
	best := 0
	for _, n := range greyRows {
		best = max(best, n)
	}
	if best < 200 {
		t.Errorf("no dashed reference line: at most %d changed grey pixels in a row", best)
	}
	c.Refs = []Ref{{Label: "bad", Y: math.NaN()}}
	if err := c.PNG(&bytes.Buffer{}); !errors.Is(err, ErrChart) {
		t.Errorf("NaN reference line: error %v, want an ErrChart", err)
	}
}

func TestChartErrors(t *testing.T) {
	ok := []Series{{X: []float64{1}, Y: []float64{1}}}
	for name, c := range map[string]Chart{
		"no series":     {},
		"lengths":       {Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}},
		"no finite":     {Series: []Series{{X: []float64{math.NaN()}, Y: []float64{1}}}},
		"empty series":  {Series: []Series{{Name: "a"}}},
		"ymin >= ymax":  {YMin: F(1), YMax: F(1), Series: ok},
		"nan bound":     {YMin: F(math.NaN()), Series: ok},
		"inf bound":     {YMax: F(math.Inf(1)), Series: ok},
		"beyond limit":  {Series: []Series{{X: []float64{0, 1e250}, Y: []float64{1, 2}}}},
		"too small":     {Width: 100, Height: 100, Series: ok},
		"too large":     {Width: 100000, Height: 500, Series: ok},
		"negative size": {Width: -1, Height: 500, Series: ok},
		"one dimension": {Width: 800, Series: ok},
	} {
		var buf bytes.Buffer
		err := c.PNG(&buf)
		if !errors.Is(err, ErrChart) {
			t.Errorf("%s: error %v, want an ErrChart", name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes despite the error", name, buf.Len())
		}
	}
}

func TestBarsPNG(t *testing.T) {
	b := siteBars()
	img, b1 := render(t, "bars", func(w *bytes.Buffer) error { return b.PNG(w) })
	if img.Bounds() != image.Rect(0, 0, 640, 400) {
		t.Fatalf("bar chart is %v", img.Bounds())
	}
	per, _ := colours(img, img.Bounds())
	// Bars are solid rectangles: thousands of pixels of exactly each colour.
	for i := range b.Series {
		if per[i] < 2000 {
			t.Errorf("series %d has %d pixels of its colour", i, per[i])
		}
	}
	_, b2 := render(t, "bars", func(w *bytes.Buffer) error { return b.PNG(w) })
	if !bytes.Equal(b1, b2) {
		t.Error("the same bar chart rendered to different bytes")
	}
	// A negative value, a fixed axis and a single unnamed series also draw.
	neg := Bars("Change in AUC", "ΔAUC", []string{"A", "B"}, BarSeries{Values: []float64{-0.05, 0.02}})
	render(t, "bars-negative", func(w *bytes.Buffer) error { return neg.PNG(w) })
	fixed := siteBars()
	fixed.YMin, fixed.YMax = F(0.5), F(1)
	render(t, "bars-fixed", func(w *bytes.Buffer) error { return fixed.PNG(w) })
	many := BarChart{Series: []BarSeries{{Name: "n", Values: make([]float64, 60)}}}
	for range 60 {
		many.Categories = append(many.Categories, "site with a long name")
	}
	render(t, "bars-many", func(w *bytes.Buffer) error { return many.PNG(w) })
}

func TestBarsIntervals(t *testing.T) {
	plain := Bars("AUC by site", "AUC", []string{"A", "B"}, BarSeries{Name: "AUC", Values: []float64{0.8, 0.7}})
	plain.Width, plain.Height = 640, 400
	withCI := plain
	withCI.Series = []BarSeries{{Name: "AUC", Values: []float64{0.8, 0.7}, Lower: []float64{0.7, math.NaN()}, Upper: []float64{0.9, math.NaN()}}}
	img0, _ := render(t, "bars-plain", func(w *bytes.Buffer) error { return plain.PNG(w) })
	img1, b1 := render(t, "bars-intervals", func(w *bytes.Buffer) error { return withCI.PNG(w) })
	// The whisker is dark ink over the first bar, where the plain chart
	// has the bar's colour only.
	dark := func(img image.Image) int {
		n := 0
		r := img.Bounds()
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA); c == ink {
					n++
				}
			}
		}
		return n
	}
	if d0, d1 := dark(img0), dark(img1); d1 <= d0+20 {
		t.Errorf("intervals added %d dark pixels (%d -> %d), want a whisker", d1-d0, d0, d1)
	}
	_, b2 := render(t, "bars-intervals", func(w *bytes.Buffer) error { return withCI.PNG(w) })
	if !bytes.Equal(b1, b2) {
		t.Error("the same chart with intervals rendered to different bytes")
	}
}

func TestBarsErrors(t *testing.T) {
	for name, b := range map[string]BarChart{
		"no categories": {Series: []BarSeries{{Values: []float64{}}}},
		"no series":     {Categories: []string{"a"}},
		"lengths":       {Categories: []string{"a", "b"}, Series: []BarSeries{{Name: "x", Values: []float64{1}}}},
		"interval":      {Categories: []string{"a"}, Series: []BarSeries{{Values: []float64{1}, Lower: []float64{0}}}},
		"infinite":      {Categories: []string{"a"}, Series: []BarSeries{{Values: []float64{math.Inf(-1)}}}},
		"bounds":        {Categories: []string{"a"}, Series: []BarSeries{{Values: []float64{1}}}, YMin: F(2), YMax: F(1)},
		"size":          {Categories: []string{"a"}, Series: []BarSeries{{Values: []float64{1}}}, Width: 10, Height: 10},
	} {
		var buf bytes.Buffer
		if err := b.PNG(&buf); !errors.Is(err, ErrChart) {
			t.Errorf("%s: error %v, want an ErrChart", name, err)
		}
	}
}

func TestTicksAndLabels(t *testing.T) {
	// Rounds are whole numbers: no tick between them, labels without a
	// decimal point.
	for _, r := range [][2]float64{{1, 2}, {1, 4}, {0, 7}, {1, 100}} {
		labelled := 0
		for _, tk := range (ticks{max: 12, whole: true}).Ticks(r[0], r[1]) {
			if tk.Value != math.Trunc(tk.Value) {
				t.Errorf("ticks over %v include %v", r, tk.Value)
			}
			if tk.Label != "" {
				labelled++
				if strings.Contains(tk.Label, ".") {
					t.Errorf("ticks over %v: label %q", r, tk.Label)
				}
			}
		}
		if labelled < 2 {
			t.Errorf("ticks over %v: %d labelled, want at least 2", r, labelled)
		}
	}
	// Minor ticks are labelled too where there is room, with as many
	// decimals as the step needs.
	var got []string
	for _, tk := range (ticks{max: 12}).Ticks(0, 1) {
		got = append(got, tk.Label)
	}
	if want := []string{"0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"}; !slices.Equal(got, want) {
		t.Errorf("ticks over [0, 1] labelled %q, want %q", got, want)
	}
	for v, want := range map[float64]string{0.876: "0.88", 312: "312", -0.05: "-0.05", 12.34: "12.3", 0.001234: "0.0012", 3e9: "3e+09"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func FuzzChart(f *testing.F) {
	f.Add(1.0, 2.0, 3.0, 0.5, -1.0, 7.0)
	f.Add(math.NaN(), 1.0, math.Inf(1), 0.0, 0.0, 0.0)
	f.Add(1e308, -1e308, 5e-324, 1.0, 1.0, 1.0)
	f.Fuzz(func(t *testing.T, x0, x1, x2, y0, y1, y2 float64) {
		c := Chart{Width: MinWidth, Height: MinHeight, Series: []Series{{Name: "s", X: []float64{x0, x1, x2}, Y: []float64{y0, y1, y2}}}}
		var buf bytes.Buffer
		if err := c.PNG(&buf); err != nil {
			if !errors.Is(err, ErrChart) {
				t.Fatalf("error %v is not an ErrChart", err)
			}
			return
		}
		if _, err := decode(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		b := BarChart{Width: MinWidth, Height: MinHeight, Categories: []string{"a", "b", "c"}, Series: []BarSeries{{Values: []float64{y0, y1, y2}}}}
		if err := b.PNG(&buf); err != nil && !errors.Is(err, ErrChart) {
			t.Fatalf("error %v is not an ErrChart", err)
		}
	})
}

func BenchmarkChartPNG(b *testing.B) {
	c := learningCurves()
	c.Width, c.Height = DefaultWidth, DefaultHeight
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := c.PNG(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "png-bytes")
}

func BenchmarkBarsPNG(b *testing.B) {
	c := siteBars()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := c.PNG(&buf); err != nil {
			b.Fatal(err)
		}
	}
}
