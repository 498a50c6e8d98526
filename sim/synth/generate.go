package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/concord-fl/concord/imaging"
)

// Sample is one synthetic radiograph as the scanner stored it.
type Sample struct {
	Pixels     []uint16 // row-major stored values, Rows*Cols of them
	Rows, Cols int
	Label      int // 1 = lesion present, 0 = none
	Patient    FakePatient
	// Monochrome1 means the pixels are stored inverted (see
	// Hospital.Monochrome1); Input and Contact turn them round.
	Monochrome1 bool
}

// FakePatient holds identifiers that look like real ones (DICOM person-name
// format, an MRN, a birth date, an accession number) but are obviously
// synthetic: the family name starts with "ZZSYNTH" and the ID with "SYN".
// Name, ID and Accession are unique per sample across the hospitals that
// Hospitals returns, and (but for a 1 in 10,000 chance per pair of seeds)
// across seeds, so a test set drawn with another seed has other patients.
type FakePatient struct {
	Name      string // "ZZSYNTHRCH^OLIVIA^QDAABC"
	ID        string // "SYNRCH4711000042": hospital, batch (from the seed), index
	BirthDate string // YYYYMMDD
	Accession string // "ARCH4711000042"
}

// Generate renders h.N radiographs for hospital h: exactly
// round(h.N*h.PositiveRate) of them carry a lesion, in a shuffled order.
// The same hospital and seed always give the same samples; two hospitals
// with the same seed get different ones.
func Generate(h Hospital, seed int64) ([]Sample, error) {
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	s1, s2 := streamSeed(seed, h.Name, 1)
	order := rand.New(rand.NewPCG(s1, s2))
	positives := int(math.Round(float64(h.N) * h.PositiveRate))
	labels := make([]int, h.N)
	for i := range positives {
		labels[i] = 1
	}
	order.Shuffle(len(labels), func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })

	out := make([]Sample, h.N)
	code := h.code()
	batch := splitmix(uint64(seed)) % 10000
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(h.N, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// One stream per sample: the result does not depend on
				// which worker drew it.
				rng := rand.New(rand.NewPCG(s1^splitmix(uint64(i)+1), s2+uint64(i)))
				out[i] = Sample{
					Pixels:      render(h, rng, labels[i]),
					Rows:        h.Size,
					Cols:        h.Size,
					Label:       labels[i],
					Patient:     fakePatient(code, batch, i, rng),
					Monochrome1: h.Monochrome1,
				}
			}
		}()
	}
	for i := range out {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, nil
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

var givenNames = []string{
	"OLIVIA", "NOAH", "AMELIA", "LIAM", "ISLA", "OSCAR", "MAYA", "LUCA", "ZARA", "THEO",
	"FREYA", "ARJUN", "NORA", "MATEO", "IRIS", "FELIX", "AISHA", "HUGO", "LENA", "OMAR",
}

// fakePatient makes sample i's identifiers. batch comes from the seed, so
// a held-out set drawn with another seed has other patients.
func fakePatient(code string, batch uint64, i int, rng *rand.Rand) FakePatient {
	year := 1932 + rng.IntN(75)
	month := 1 + rng.IntN(12)
	day := 1 + rng.IntN(28)
	return FakePatient{
		Name:      fmt.Sprintf("ZZSYNTH%s^%s^%s%s", code, givenNames[rng.IntN(len(givenNames))], letters(batch%676, 2), letters(uint64(i), 4)),
		ID:        fmt.Sprintf("SYN%s%04d%06d", code, batch%10000, i+1),
		BirthDate: fmt.Sprintf("%04d%02d%02d", year, month, day),
		Accession: fmt.Sprintf("A%s%04d%06d", code, batch%10000, i+1),
	}
}

// letters spells n in base 26 as the given number of letters A..Z, most
// significant first (wrapping when n needs more).
func letters(n uint64, digits int) string {
	b := make([]byte, digits)
	for k := digits - 1; k >= 0; k-- {
		b[k] = byte('A' + n%26)
		n /= 26
	}
	return string(b)
}

// anatomy is one patient's chest, in image coordinates [0,1]x[0,1].
type anatomy struct {
	zoom, rot, dx, dy     float64 // positioning of the patient on the detector
	cosRot, sinRot        float64
	bg, heel              float64 // background level and heel-effect gradient
	waves                 [3][4]float64
	bodyX, bodyY          float64
	bodyRX, bodyRY        float64
	tissue                float64
	lungX, lungY          [2]float64
	lungRX, lungRY        [2]float64
	lungCos, lungSin      [2]float64
	lungDark              float64
	heartX, heartY        float64
	heartRX, heartRY      float64
	ribTop, ribSp, ribW   float64
	ribSlope, ribCurve    float64
	ribs                  float64
	vessels               [][4]float64 // x, y, sigma, amplitude
	branches              [][6]float64 // x0, y0, x1, y1, width, amplitude
	lesion                bool
	lesX, lesY            float64
	lesSX, lesSY          float64
	lesCos, lesSin        float64
	lesAmp                float64
	clavicle, spineBright float64
}

func newAnatomy(rng *rand.Rand, label int) anatomy {
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }
	a := anatomy{
		zoom: u(0.9, 1.06), rot: u(-0.05, 0.05), dx: u(-0.03, 0.03), dy: u(-0.03, 0.03),
		bg: u(0.03, 0.1), heel: u(-0.06, 0.06),
		bodyX: 0.5, bodyY: u(0.56, 0.62), bodyRX: u(0.4, 0.47), bodyRY: u(0.58, 0.66),
		tissue:   u(0.5, 0.6),
		lungDark: u(0.26, 0.34),
		heartX:   0.5 + u(0.03, 0.06), heartY: u(0.64, 0.7), heartRX: u(0.15, 0.19), heartRY: u(0.12, 0.15),
		ribTop: u(0.17, 0.21), ribSp: u(0.062, 0.074), ribW: u(0.011, 0.016),
		ribSlope: u(0.08, 0.16), ribCurve: u(0.5, 1.0), ribs: u(0.05, 0.09),
		clavicle: u(0.05, 0.09), spineBright: u(0.08, 0.12),
	}
	a.cosRot, a.sinRot = math.Cos(a.rot), math.Sin(a.rot)
	for k := range a.waves {
		a.waves[k] = [4]float64{u(0.5, 2), u(0.5, 2), u(0, 2*math.Pi), u(0.005, 0.02)}
	}
	for s, side := range []float64{-1, 1} {
		a.lungX[s] = 0.5 + side*u(0.165, 0.2)
		a.lungY[s] = u(0.45, 0.5)
		a.lungRX[s] = u(0.12, 0.15)
		a.lungRY[s] = u(0.26, 0.31)
		tilt := side * u(0, 0.15)
		a.lungCos[s], a.lungSin[s] = math.Cos(tilt), math.Sin(tilt)
	}
	// Vessel markings in both classes, densest near the hila: a small
	// faint lesion has to be told apart from them.
	for range 6 + rng.IntN(8) {
		s := rng.IntN(2)
		side := float64(2*s - 1)
		a.vessels = append(a.vessels, [4]float64{
			0.5 + side*u(0.08, 0.26), u(0.32, 0.66), u(0.006, 0.014), u(0.02, 0.06),
		})
	}
	// Vascular markings branch out from each hilum.
	for _, side := range []float64{-1, 1} {
		hx, hy := 0.5+side*u(0.08, 0.11), u(0.44, 0.5)
		for range 5 + rng.IntN(4) {
			th := u(-1.3, 1.3)
			l := u(0.1, 0.24)
			a.branches = append(a.branches, [6]float64{
				hx, hy, hx + side*l*math.Cos(th), hy + l*math.Sin(th), u(0.004, 0.008), u(0.02, 0.05),
			})
		}
	}
	if label == 1 {
		a.lesion = true
		s := rng.IntN(2)
		r, th := 0.75*math.Sqrt(rng.Float64()), 2*math.Pi*rng.Float64()
		// A point in the lung's own (tilted) frame, rotated back.
		du, dv := r*a.lungRX[s]*math.Cos(th), r*a.lungRY[s]*math.Sin(th)
		a.lesX = a.lungX[s] + a.lungCos[s]*du - a.lungSin[s]*dv
		a.lesY = a.lungY[s] + a.lungSin[s]*du + a.lungCos[s]*dv
		a.lesSX = u(0.06, 0.11)
		a.lesSY = a.lesSX * u(0.6, 1)
		rot := u(0, math.Pi)
		a.lesCos, a.lesSin = math.Cos(rot), math.Sin(rot)
		if rng.IntN(5) == 0 {
			a.lesAmp = u(0.25, 0.4) // faint
		} else {
			a.lesAmp = u(0.5, 1)
		}
	}
	return a
}

// ellipse is the squared normalised distance of (u, v) from an
// axis-aligned ellipse's centre: below 1 inside.
func ellipse(u, v, cx, cy, rx, ry float64) float64 {
	du, dv := u-cx, v-cy
	return (du*du)/(rx*rx) + (dv*dv)/(ry*ry)
}

// tilted is ellipse rotated by the angle whose cosine and sine are c, s.
func tilted(u, v, cx, cy, rx, ry, c, s float64) float64 {
	du, dv := u-cx, v-cy
	du, dv = c*du+s*dv, -s*du+c*dv
	return (du*du)/(rx*rx) + (dv*dv)/(ry*ry)
}

// intensity is the scene at (u, v): 0 is air, 1 is dense bone; lungs are dark.
func (a *anatomy) intensity(u, v float64) float64 {
	// Patient positioning: undo zoom, rotation and shift.
	u, v = (u-0.5)/a.zoom, (v-0.5)/a.zoom
	u, v = a.cosRot*u-a.sinRot*v+0.5-a.dx, a.sinRot*u+a.cosRot*v+0.5-a.dy

	val := a.bg
	// Each structure adds or removes attenuation in proportion to its
	// projected thickness, which is how a radiograph forms: bodies fade at
	// their edges rather than ending in a step.
	dBody := ellipse(u, v, a.bodyX, a.bodyY, a.bodyRX, a.bodyRY)
	if dBody >= 1 {
		return val
	}
	body := math.Min(1, 1.8*math.Sqrt(1-dBody))
	val += body * (a.tissue - a.bg)
	lung := math.Max(
		thickness(tilted(u, v, a.lungX[0], a.lungY[0], a.lungRX[0], a.lungRY[0], a.lungCos[0], a.lungSin[0]), 1.1),
		thickness(tilted(u, v, a.lungX[1], a.lungY[1], a.lungRX[1], a.lungRY[1], a.lungCos[1], a.lungSin[1]), 1.1),
	) * body
	// The heart hides the lower medial lungs; lungs are darkest at the
	// apices and denser towards the diaphragm.
	heart := thickness(ellipse(u, v, a.heartX, a.heartY, a.heartRX, a.heartRY), 2.5)
	lung *= 1 - heart
	val -= a.lungDark * lung * (1 - 0.25*smooth(0.5, 0.8, v))
	for _, b := range a.branches {
		r := 3 * b[4]
		if u < min(b[0], b[2])-r || u > max(b[0], b[2])+r || v < min(b[1], b[3])-r || v > max(b[1], b[3])+r {
			continue
		}
		d2 := segmentDistance2(u, v, b[0], b[1], b[2], b[3])
		val += b[5] * math.Exp(-d2/(b[4]*b[4])) * lung
	}

	du := u - a.bodyX
	spine := math.Exp(-du * du / (0.028 * 0.028))
	val += a.spineBright * spine * body * (0.8 + 0.2*math.Sin(2*math.Pi*11*v))

	// Posterior ribs: bands that fall laterally from the spine, seen best
	// through the lungs.
	adu := math.Abs(du)
	if adu > 0.03 && adu < a.bodyRX {
		t := (v - a.ribTop - a.ribSlope*adu - a.ribCurve*du*du) / a.ribSp
		k := math.Round(t)
		if k >= 0 && k < 10 {
			d := (t - k) * a.ribSp / a.ribW
			val += a.ribs * math.Exp(-d*d) * (0.35 + 0.65*lung)
		}
	}
	// Clavicles.
	for _, side := range []float64{-1, 1} {
		x0, y0, x1, y1 := 0.5+side*0.04, 0.2, 0.5+side*0.3, 0.13
		if v > 0.25 {
			break
		}
		d2 := segmentDistance2(u, v, x0, y0, x1, y1)
		val += a.clavicle * math.Exp(-d2/(0.014*0.014)) * body
	}
	for _, w := range a.vessels {
		dx, dy := u-w[0], v-w[1]
		if r2 := dx*dx + dy*dy; r2 < 16*w[2]*w[2] {
			val += w[3] * math.Exp(-r2/(2*w[2]*w[2])) * lung
		}
	}
	if a.lesion {
		dx, dy := u-a.lesX, v-a.lesY
		dx, dy = a.lesCos*dx+a.lesSin*dy, -a.lesSin*dx+a.lesCos*dy
		q := dx*dx/(a.lesSX*a.lesSX) + dy*dy/(a.lesSY*a.lesSY)
		add := a.lesAmp * math.Exp(-0.5*q) * (0.3 + 0.7*lung)
		// A nodule is soft tissue: it can fill the lung's darkness but not
		// outshine bone, so its brightness saturates smoothly there, which
		// also gives large ones the flat top of a real opacity.
		limit := a.lungDark * (1.5*lung + 0.3)
		val += limit * (1 - math.Exp(-add/limit))
	}
	return val
}

// thickness is the projected depth of an ellipsoid at normalised squared
// distance d from its centre, saturating at 1 (gain sets how soon).
func thickness(d, gain float64) float64 {
	if d >= 1 {
		return 0
	}
	return math.Min(1, gain*math.Sqrt(1-d))
}

func smooth(lo, hi, x float64) float64 {
	t := math.Min(1, math.Max(0, (x-lo)/(hi-lo)))
	return t * t * (3 - 2*t)
}

// segmentDistance2 is the squared distance from (px, py) to the segment
// (x0, y0)-(x1, y1).
func segmentDistance2(px, py, x0, y0, x1, y1 float64) float64 {
	vx, vy := x1-x0, y1-y0
	t := ((px-x0)*vx + (py-y0)*vy) / (vx*vx + vy*vy)
	t = min(1, max(0, t))
	dx, dy := px-(x0+t*vx), py-(y0+t*vy)
	return dx*dx + dy*dy
}

// render draws one radiograph through h's scanner: contrast, point spread,
// detector noise, then the scanner's units and bit depth.
func render(h Hospital, rng *rand.Rand, label int) []uint16 {
	a := newAnatomy(rng, label)
	n := h.Size
	img := make([]float32, n*n)
	// Supersample 2x2 below 64 pixels so that thin ribs and small lesions
	// survive small sizes; above, the point spread does that job.
	ss := 1
	if n < 64 {
		ss = 2
	}
	for y := range n {
		for x := range n {
			var sum float64
			for sy := range ss {
				for sx := range ss {
					u := (float64(x) + (float64(sx)+0.5)/float64(ss)) / float64(n)
					v := (float64(y) + (float64(sy)+0.5)/float64(ss)) / float64(n)
					sum += a.intensity(u, v)
				}
			}
			// Heel effect and slow background variation, smooth enough
			// to need no supersampling.
			u, v := (float64(x)+0.5)/float64(n), (float64(y)+0.5)/float64(n)
			bg := a.heel * (v - 0.5)
			for _, w := range a.waves {
				bg += w[3] * math.Cos(2*math.Pi*(w[0]*u+w[1]*v)+w[2])
			}
			img[y*n+x] = float32(sum/float64(ss*ss) + bg)
		}
	}
	for i, v := range img {
		img[i] = float32(0.45 + h.Contrast*(float64(v)-0.45))
	}
	if h.Blur > 0 {
		img = imaging.Gaussian(img, n, n, h.Blur)
	}
	full := float64(maxStored(h.BitsStored))
	out := make([]uint16, n*n)
	for i, p := range img {
		v := float64(p) + h.NoiseSigma*rng.NormFloat64()
		v = math.Min(1, math.Max(0, v))
		if h.Monochrome1 {
			v = 1 - v
		}
		out[i] = uint16(math.Min(full, math.Round(h.Scale*v+h.Offset)))
	}
	return out
}

// Input resamples the sample to size x size by area averaging and
// standardises it to zero mean and unit variance (inverting MONOCHROME1
// samples) with imaging's own functions, which removes the scanner's units
// the way a site's preprocessing would. It is the model input for
// simulations that keep the data in memory.
func (s Sample) Input(size int) ([]float32, error) {
	if size <= 0 || size > MaxSize {
		return nil, fmt.Errorf("input size %d is outside 1..%d", size, MaxSize)
	}
	if s.Rows <= 0 || s.Cols <= 0 || len(s.Pixels) != s.Rows*s.Cols {
		return nil, fmt.Errorf("sample has %d pixels for %dx%d", len(s.Pixels), s.Rows, s.Cols)
	}
	src := make([]float32, len(s.Pixels))
	for i, p := range s.Pixels {
		src[i] = float32(p)
	}
	out := imaging.ResizeArea(src, s.Cols, s.Rows, size, size)
	imaging.ZScore(out)
	if s.Monochrome1 {
		for i := range out {
			out[i] = -out[i] // bright is air: turn it round
		}
	}
	return out, nil
}
