package imaging

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// PipelineVersion names the code of the standardisation pipeline. It is part of
// Pipeline.Hash, so a change in what Apply computes must change it.
const PipelineVersion = "concord-imaging-pipeline/1"

// Pipeline is the standardisation declared in a job spec. Every site runs the same
// Pipeline, and its Hash goes into the model's lineage.
type Pipeline struct {
	// Width and Height are the model's input size.
	Width  int `yaml:"width" json:"width"`
	Height int `yaml:"height" json:"height"`
	// Channels is 1 (grey; colour converted to luminance) or 3 (RGB; grey replicated).
	Channels int `yaml:"channels" json:"channels"`
	// Resample is "area", "bilinear" or "reduced-area": area averaging of a JPEG
	// 2000 frame decoded only down to the smallest wavelet resolution no smaller
	// than Width x Height (see [Image.FrameReduced]; much faster on large images,
	// and a different result from "area", hence its own name); other frames as
	// "area".
	Resample string `yaml:"resample" json:"resample"`
	// Normalise is "auto" (per modality), "voi" (the file's VOI LUT or window, with its
	// VOI LUT Function; min-max when it has neither), "ct-window:C:W",
	// "percentile:LO:HI", "zscore" or "minmax".
	Normalise string `yaml:"normalise" json:"normalise"`
	// Denoise is "", "gaussian:SIGMA", "median:SIZE" (odd) or "bilateral:RADIUS:RANGE_SIGMA".
	Denoise string `yaml:"denoise" json:"denoise"`
	// Contrast is "", "histeq" or "clahe:TILES:CLIP".
	Contrast string `yaml:"contrast" json:"contrast"`
}

// ErrPipeline marks an invalid pipeline declaration.
var ErrPipeline = errors.New("invalid imaging pipeline")

// DefaultPipeline is a 224x224 grey pipeline with per-modality normalisation.
func DefaultPipeline() Pipeline {
	return Pipeline{Width: 224, Height: 224, Channels: 1, Resample: "area", Normalise: "auto"}
}

func parseSpec(s string) (string, []float64, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	args := make([]float64, 0, len(parts)-1)
	for _, a := range parts[1:] {
		v, err := strconv.ParseFloat(strings.TrimSpace(a), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return "", nil, fmt.Errorf("%w: %q: argument %q is not a number", ErrPipeline, s, a)
		}
		args = append(args, v)
	}
	return strings.ToLower(parts[0]), args, nil
}

// Validate reports the first problem with the declaration, saying what is allowed.
func (p Pipeline) Validate() error {
	if p.Width < 1 || p.Height < 1 || p.Width > 8192 || p.Height > 8192 {
		return fmt.Errorf("%w: width and height must be 1..8192, got %dx%d", ErrPipeline, p.Width, p.Height)
	}
	if p.Channels != 1 && p.Channels != 3 {
		return fmt.Errorf("%w: channels must be 1 or 3, got %d", ErrPipeline, p.Channels)
	}
	if p.Resample != "area" && p.Resample != "bilinear" && p.Resample != "reduced-area" {
		return fmt.Errorf("%w: resample must be area, bilinear or reduced-area, got %q", ErrPipeline, p.Resample)
	}
	name, args, err := parseSpec(p.Normalise)
	if err != nil {
		return err
	}
	switch {
	case (name == "auto" || name == "voi" || name == "zscore" || name == "minmax") && len(args) == 0:
	case name == "ct-window" && len(args) == 2 && args[1] > 0:
	case name == "percentile" && len(args) == 2 && args[0] >= 0 && args[0] < args[1] && args[1] <= 100:
	default:
		return fmt.Errorf("%w: normalise %q: use auto, voi, zscore, minmax, ct-window:CENTER:WIDTH or percentile:LO:HI", ErrPipeline, p.Normalise)
	}
	if p.Denoise != "" {
		name, args, err := parseSpec(p.Denoise)
		if err != nil {
			return err
		}
		switch {
		case name == "gaussian" && len(args) == 1 && args[0] > 0 && args[0] <= 20:
		case name == "median" && len(args) == 1 && args[0] >= 3 && args[0] <= 15 && int(args[0])%2 == 1 && args[0] == math.Trunc(args[0]):
		case name == "bilateral" && len(args) == 2 && args[0] >= 1 && args[0] <= 10 && args[0] == math.Trunc(args[0]) && args[1] > 0:
		default:
			return fmt.Errorf("%w: denoise %q: use gaussian:SIGMA (0..20], median:SIZE (odd 3..15) or bilateral:RADIUS:RANGE_SIGMA", ErrPipeline, p.Denoise)
		}
	}
	if p.Contrast != "" {
		name, args, err := parseSpec(p.Contrast)
		if err != nil {
			return err
		}
		switch {
		case name == "histeq" && len(args) == 0:
		case name == "clahe" && len(args) == 2 && args[0] >= 1 && args[0] <= 64 && args[0] == math.Trunc(args[0]) && args[1] >= 1:
		default:
			return fmt.Errorf("%w: contrast %q: use histeq or clahe:TILES:CLIP (tiles 1..64, clip >= 1)", ErrPipeline, p.Contrast)
		}
	}
	return nil
}

// Canonical is the exact text Hash covers.
func (p Pipeline) Canonical() string {
	return fmt.Sprintf("version=%s\nwidth=%d\nheight=%d\nchannels=%d\nresample=%s\nnormalise=%s\ndenoise=%s\ncontrast=%s\n",
		PipelineVersion, p.Width, p.Height, p.Channels, p.Resample,
		strings.TrimSpace(p.Normalise), strings.TrimSpace(p.Denoise), strings.TrimSpace(p.Contrast))
}

// Hash is the hex sha256 of the canonical configuration and PipelineVersion.
func (p Pipeline) Hash() string {
	s := sha256.Sum256([]byte(p.Canonical()))
	return hex.EncodeToString(s[:])
}

// Apply standardises one frame: channel conversion, normalisation, denoising, contrast
// and resampling. The result is Channels*Height*Width float32 values, channel-major (CHW).
func (p Pipeline) Apply(im *Image, frame int) (result []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, fmt.Errorf("%w: pipeline fault: %v", ErrMalformed, r)
		}
	}()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var px []float32
	w, h := im.Columns, im.Rows
	if p.Resample == "reduced-area" {
		px, w, h, err = im.FrameReduced(frame, p.Width, p.Height)
	} else {
		px, err = im.frame(frame) // needed only until Apply returns: a Decoder's buffer will do
	}
	if err != nil {
		return nil, err
	}
	if im.floatTag != 0 {
		finite(px)
	}
	n := w * h
	colour := len(px) == 3*n
	var planes [][]float32
	switch {
	case colour && p.Channels == 1:
		g := make([]float32, n)
		for k := range g {
			g[k] = 0.299*px[3*k] + 0.587*px[3*k+1] + 0.114*px[3*k+2]
		}
		planes = [][]float32{g}
	case colour:
		planes = make([][]float32, 3)
		for c := range planes {
			planes[c] = make([]float32, n)
			for k := 0; k < n; k++ {
				planes[c][k] = px[3*k+c]
			}
		}
	default:
		planes = [][]float32{px}
	}
	name, args, _ := parseSpec(p.Normalise)
	if name == "auto" {
		name, args = autoNormalise(im, colour)
	}
	for _, pl := range planes {
		switch {
		case name == "voi" && !colour && im.voi(pl):
		case name == "voi":
			normalise(pl, "minmax", nil)
		default:
			normalise(pl, name, args)
		}
		if im.PhotometricInterpretation == "MONOCHROME1" {
			invert(pl, name == "zscore")
		}
	}
	out := make([]float32, 0, p.Channels*p.Width*p.Height)
	for _, pl := range planes {
		if p.Denoise != "" {
			dn, dargs, _ := parseSpec(p.Denoise)
			pl = denoise(pl, w, h, dn, dargs)
		}
		if p.Contrast != "" {
			cn, cargs, _ := parseSpec(p.Contrast)
			pl = contrast(pl, w, h, cn, cargs)
		}
		if p.Resample == "bilinear" {
			pl = resizeBilinear(pl, w, h, p.Width, p.Height)
		} else {
			pl = ResizeArea(pl, w, h, p.Width, p.Height)
		}
		out = append(out, pl...)
	}
	for len(out) < p.Channels*p.Width*p.Height {
		out = append(out, out[:p.Width*p.Height]...)
	}
	return out, nil
}

// finite replaces the NaN and infinite values float pixel data may hold (parametric
// maps mark pixels without a value with NaN) by the lowest finite value, +Inf by the
// highest, so that no normalisation turns a whole tensor into NaN. A frame without a
// finite value becomes zeros.
func finite(v []float32) {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range v {
		if !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) {
			lo, hi = min(lo, x), max(hi, x)
		}
	}
	if lo > hi {
		lo, hi = 0, 0
	}
	for k, x := range v {
		switch {
		case math.IsInf(float64(x), 1):
			v[k] = hi
		case math.IsNaN(float64(x)) || math.IsInf(float64(x), -1):
			v[k] = lo
		}
	}
}

// autoNormalise chooses per modality: CT uses the file's window or soft tissue
// (40/400 HU); colour scales the stored range; everything else clips to the
// 0.5-99.5 percentiles, which is robust to collimation borders and burned-in text.
func autoNormalise(im *Image, colour bool) (string, []float64) {
	switch {
	case colour:
		return "range", []float64{0, float64(uint64(1)<<uint(min(im.BitsStored, 32)) - 1)}
	case im.Modality == "CT" && (im.HasWindow || im.VOILUT != nil):
		return "voi", nil
	case im.Modality == "CT":
		return "ct-window", []float64{40, 400}
	}
	return "percentile", []float64{0.5, 99.5}
}

func normalise(v []float32, name string, args []float64) {
	switch name {
	case "ct-window":
		lo, hi := args[0]-args[1]/2, args[0]+args[1]/2
		scaleClip(v, lo, hi)
	case "range":
		scaleClip(v, args[0], args[1])
	case "percentile":
		lo, hi := percentiles(v, args[0], args[1])
		scaleClip(v, lo, hi)
	case "zscore":
		ZScore(v)
	default: // minmax
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range v {
			lo = math.Min(lo, float64(x))
			hi = math.Max(hi, float64(x))
		}
		scaleClip(v, lo, hi)
	}
}

// ZScore standardises v in place to zero mean and unit variance; a constant v
// becomes all zeros.
func ZScore(v []float32) {
	var sum, sq float64
	for _, x := range v {
		sum += float64(x)
	}
	mean := sum / float64(len(v))
	for _, x := range v {
		d := float64(x) - mean
		sq += d * d
	}
	sd := math.Sqrt(sq / float64(len(v)))
	if sd == 0 {
		sd = 1
	}
	for k, x := range v {
		v[k] = float32((float64(x) - mean) / sd)
	}
}

func scaleClip(v []float32, lo, hi float64) {
	if !(hi > lo) {
		for k := range v {
			v[k] = 0
		}
		return
	}
	s := 1 / (hi - lo)
	for k, x := range v {
		y := (float64(x) - lo) * s
		if y < 0 {
			y = 0
		} else if y > 1 {
			y = 1
		}
		v[k] = float32(y)
	}
}

func invert(v []float32, zscore bool) {
	for k, x := range v {
		if zscore {
			v[k] = -x
		} else {
			v[k] = 1 - x
		}
	}
}

// percentiles returns the lo and hi percentiles with numpy's default linear
// interpolation. One histogram finds the bucket holding each needed rank and only
// those buckets are sorted, so the cost stays linear on 4-megapixel radiographs.
func percentiles(v []float32, lo, hi float64) (float64, float64) {
	q := quantiles(v, lo/100, hi/100)
	return q[0], q[1]
}

func quantile(v []float32, q float64) float64 { return quantiles(v, q)[0] }

func quantiles(v []float32, qs ...float64) []float64 {
	n := len(v)
	out := make([]float64, len(qs))
	if n == 0 {
		return out
	}
	var ranks []int
	for _, q := range qs {
		i := int(math.Floor(q * float64(n-1)))
		ranks = append(ranks, i, min(i+1, n-1))
	}
	vals := kths(v, ranks)
	for j, q := range qs {
		pos := q * float64(n-1)
		f := pos - math.Floor(pos)
		a, b := vals[2*j], vals[2*j+1]
		out[j] = a
		if f != 0 {
			out[j] = a*(1-f) + b*f
		}
	}
	return out
}

// kths returns the k-th smallest values (0-based) for each k.
func kths(v []float32, ks []int) []float64 {
	out := make([]float64, len(ks))
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if lo == hi {
		for i := range out {
			out[i] = float64(lo)
		}
		return out
	}
	const bins = 1 << 14
	scale := float64(bins-1) / (float64(hi) - float64(lo))
	count := make([]int, bins)
	bin := func(x float32) int { return int((float64(x) - float64(lo)) * scale) }
	for _, x := range v {
		count[bin(x)]++
	}
	type want struct{ bucket, before int }
	wants := make([]want, len(ks))
	slot := make([]int, bins) // bucket -> 1 + index into sels, 0 when not needed
	var sels [][]float32
	for i, k := range ks {
		b, before := 0, 0
		for ; b < bins-1 && before+count[b] <= k; b++ {
			before += count[b]
		}
		wants[i] = want{b, before}
		if slot[b] == 0 {
			sels = append(sels, make([]float32, 0, count[b]))
			slot[b] = len(sels)
		}
	}
	for _, x := range v {
		if j := slot[bin(x)]; j != 0 {
			sels[j-1] = append(sels[j-1], x)
		}
	}
	for _, sel := range sels {
		sort.Slice(sel, func(i, j int) bool { return sel[i] < sel[j] })
	}
	for i, k := range ks {
		sel := sels[slot[wants[i].bucket]-1]
		out[i] = float64(sel[min(k-wants[i].before, len(sel)-1)])
	}
	return out
}
