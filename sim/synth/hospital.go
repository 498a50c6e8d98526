package synth

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"unicode"
)

// Hospital describes one simulated site: how many radiographs it holds,
// its label mix and its scanner. Hospitals differ the way real ones do:
// image size, stored-value units, noise, contrast, sharpness and the share
// of positive cases.
type Hospital struct {
	Name string // also the DICOM InstitutionName; see Slug for a folder-safe form
	N    int    // number of images
	Size int    // native image size in pixels (Rows = Columns = Size)

	PositiveRate float64 // share of images with a lesion, in [0, 1]

	// Stored value = Scale*intensity + Offset, intensity in [0, 1]: the
	// scanner's own units. The result is clipped to BitsStored bits.
	Scale, Offset float64

	NoiseSigma float64 // standard deviation of the detector noise, in intensity units
	Contrast   float64 // 1 is neutral; above 1 stretches, below 1 flattens
	Blur       float64 // Gaussian point-spread sigma in pixels; 0 is none

	BitsStored   int    // 8..16
	Modality     string // "CR" or "DX"
	Manufacturer string

	// Monochrome1 stores images inverted (air bright, bone dark), as many
	// computed-radiography readers do; the DICOM files say MONOCHROME1 and
	// the imaging pipeline must turn them round.
	Monochrome1 bool
}

// Limits checked by Validate. MaxSize bounds the memory one sample takes.
const (
	MinSize = 16
	MaxSize = 1024

	maxPixels = 1 << 31 // 4 GiB of uint16 pixels over one hospital
)

// Validate reports the first thing wrong with h, in words a user can act on.
func (h Hospital) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case strings.TrimSpace(h.Name) == "":
		return errors.New("hospital name is empty")
	case Slug(h.Name) == "":
		return fmt.Errorf("hospital name %q has no letters or digits", h.Name)
	case h.N < 0:
		return fmt.Errorf("hospital %q: N is %d; it must be zero or more", h.Name, h.N)
	case h.Size < MinSize || h.Size > MaxSize:
		return fmt.Errorf("hospital %q: size %d is outside %d..%d pixels", h.Name, h.Size, MinSize, MaxSize)
	case int64(h.N)*int64(h.Size)*int64(h.Size) > maxPixels:
		return fmt.Errorf("hospital %q: %d images of %dx%d pixels would need more than %d GiB; generate fewer or smaller",
			h.Name, h.N, h.Size, h.Size, maxPixels*2>>30)
	case !finite(h.PositiveRate) || h.PositiveRate < 0 || h.PositiveRate > 1:
		return fmt.Errorf("hospital %q: positive rate %v is outside 0..1", h.Name, h.PositiveRate)
	case h.BitsStored < 8 || h.BitsStored > 16:
		return fmt.Errorf("hospital %q: bits stored %d is outside 8..16", h.Name, h.BitsStored)
	case !finite(h.Scale) || h.Scale <= 0:
		return fmt.Errorf("hospital %q: scale %v must be a positive number", h.Name, h.Scale)
	case !finite(h.Offset) || h.Offset < 0:
		return fmt.Errorf("hospital %q: offset %v must be zero or more", h.Name, h.Offset)
	case h.Scale+h.Offset > float64(maxStored(h.BitsStored)):
		return fmt.Errorf("hospital %q: scale+offset %v does not fit in %d bits (max %d); lower them or raise bits stored",
			h.Name, h.Scale+h.Offset, h.BitsStored, maxStored(h.BitsStored))
	case !finite(h.NoiseSigma) || h.NoiseSigma < 0 || h.NoiseSigma > 1:
		return fmt.Errorf("hospital %q: noise sigma %v is outside 0..1", h.Name, h.NoiseSigma)
	case !finite(h.Contrast) || h.Contrast <= 0 || h.Contrast > 10:
		return fmt.Errorf("hospital %q: contrast %v is outside (0, 10]", h.Name, h.Contrast)
	case !finite(h.Blur) || h.Blur < 0 || h.Blur > float64(h.Size)/4:
		return fmt.Errorf("hospital %q: blur %v is outside 0..%v pixels", h.Name, h.Blur, float64(h.Size)/4)
	case h.Modality != "CR" && h.Modality != "DX":
		return fmt.Errorf("hospital %q: modality %q is not CR or DX", h.Name, h.Modality)
	}
	return nil
}

func maxStored(bits int) int { return 1<<bits - 1 }

// Slug is name lower-cased with runs of anything but letters and digits
// turned into single dashes: a folder name and a site ID.
func Slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
			continue
		}
		if r == '\'' { // "St Mary's" -> "st-marys"
			continue
		}
		dash = true
	}
	return b.String()
}

// Slug returns Slug(h.Name).
func (h Hospital) Slug() string { return Slug(h.Name) }

// code is the short upper-case tag used in fake identifiers: the initials of
// the name's words plus any digits, e.g. "Riverside Community Hospital 2" ->
// "RCH2".
func (h Hospital) code() string {
	var b strings.Builder
	for _, w := range strings.Split(Slug(h.Name), "-") {
		if w == "" {
			continue
		}
		if w[0] >= '0' && w[0] <= '9' {
			b.WriteString(w)
			continue
		}
		b.WriteByte(w[0] - 'a' + 'A')
	}
	return b.String()
}

// hospitalNames are invented; any likeness to a real hospital is accidental.
// Their initials differ, so identifiers made from them do not collide.
var hospitalNames = []string{
	"St Brigid's General",
	"Northfield University Hospital",
	"Riverside Community Hospital",
	"Alder Valley Medical Centre",
	"Harbour Point Infirmary",
	"Kingsmere Royal Hospital",
	"Elm Park Clinic",
	"Westbrook Regional Hospital",
	"Oakridge Memorial",
	"Greystone District Hospital",
	"Marlow Bay Hospital",
	"Thornbury Teaching Hospital",
}

var manufacturers = []string{
	"Agfa", "Carestream Health", "Fujifilm", "Philips Medical Systems",
	"Siemens Healthineers", "GE Healthcare", "Canon Medical Systems", "Konica Minolta",
}

var nativeSizes = []int{48, 56, 64, 72, 80, 96}

// Hospitals returns n distinct hospitals with realistic variation in image
// size (48..96 pixels), units and bit depth, noise, contrast, blur, label
// mix (positive rates spread over 0.15..0.6), modality and, for some CR
// sites, MONOCHROME1 storage. The same n and seed give the same hospitals
// (a different n gives a different set); n <= 0 gives none. N is set to
// 160..360; callers sizing a run set it themselves.
func Hospitals(n int, seed int64) []Hospital {
	if n <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x68_6f_73_70)) // "hosp"
	names := append([]string(nil), hospitalNames...)
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	sizes := append([]int(nil), nativeSizes...)
	rng.Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })

	// Stratify the label mix so that even three hospitals span a wide range
	// (from rare positives to a referral centre with many).
	rates := make([]float64, n)
	for i := range rates {
		lo := 0.15 + 0.45*float64(i)/float64(n)
		rates[i] = lo + rng.Float64()*0.45/float64(n)
	}
	rng.Shuffle(n, func(i, j int) { rates[i], rates[j] = rates[j], rates[i] })

	out := make([]Hospital, n)
	for i := range out {
		name := names[i%len(names)]
		if i >= len(names) {
			name = fmt.Sprintf("%s %d", name, i/len(names)+1)
		}
		bits := []int{10, 12, 12, 14, 16}[rng.IntN(5)]
		full := float64(maxStored(bits))
		scale := math.Round(full * (0.55 + 0.35*rng.Float64()))
		offset := math.Round(full * 0.08 * rng.Float64())
		modality := "DX"
		if rng.IntN(3) == 0 {
			modality = "CR" // older cassette-based sites: noisier, blurrier
		}
		noise := 0.012 + 0.03*rng.Float64()
		blur := 0.2 + 0.8*rng.Float64()
		if modality == "CR" {
			noise += 0.01
			blur += 0.4
		}
		mono1 := modality == "CR" && rng.IntN(2) == 0
		out[i] = Hospital{
			Monochrome1:  mono1,
			Name:         name,
			N:            160 + 40*rng.IntN(6),
			Size:         sizes[i%len(sizes)],
			PositiveRate: math.Round(rates[i]*100) / 100,
			Scale:        scale,
			Offset:       offset,
			NoiseSigma:   math.Round(noise*1000) / 1000,
			Contrast:     math.Round((0.75+0.6*rng.Float64())*100) / 100,
			Blur:         math.Round(blur*100) / 100,
			BitsStored:   bits,
			Modality:     modality,
			Manufacturer: manufacturers[rng.IntN(len(manufacturers))],
		}
	}
	return out
}

// streamSeed mixes a caller's seed with a hospital name and a purpose so
// that hospitals sharing a seed still get independent random streams.
func streamSeed(seed int64, name string, purpose uint64) (uint64, uint64) {
	f := fnv.New64a()
	f.Write([]byte(name))
	return uint64(seed) ^ purpose*0x9e3779b97f4a7c15, f.Sum64()
}
