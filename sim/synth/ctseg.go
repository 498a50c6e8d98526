package synth

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/concord-fl/concord/imaging"
)

// CTSite describes one simulated hospital's CT scanner for segmentation:
// axial slices through synthetic abdomens, each with the mask of one known
// structure (an organ: an ellipsoid of soft tissue slightly denser than
// its surroundings). Sites differ in noise, in the organ's contrast and in
// their patients' anatomy, so that a model trained at one site is not
// simply right at another.
type CTSite struct {
	Name     string
	Patients int // volumes; each gives SlicesPer slices
	// SlicesPer is the number of axial slices per patient, evenly spaced
	// through the organ's region; a slice past the organ's end has an
	// empty mask.
	SlicesPer int
	Size      int // rows = columns

	NoiseHU    float64 // standard deviation of the noise, in Hounsfield units
	OrganHU    float64 // the organ's mean density; the rest of the abdomen is 30 HU
	OrganScale float64 // 1 is a typical organ; the site's population is larger or smaller
}

// CTSites returns n sites with settings drawn from seed.
func CTSites(n int, seed int64) []CTSite {
	out := make([]CTSite, n)
	for i := range out {
		name := fmt.Sprintf("CT Hospital %d", i+1)
		s1, s2 := streamSeed(seed, name, 7)
		rng := rand.New(rand.NewPCG(s1, s2))
		out[i] = CTSite{Name: name, Patients: 12, SlicesPer: 8, Size: 64,
			NoiseHU: 12 + 14*rng.Float64(), OrganHU: 70 + 30*rng.Float64(), OrganScale: 0.8 + 0.4*rng.Float64()}
	}
	return out
}

// Slug is the folder-safe form of the site's name.
func (s CTSite) Slug() string { return Slug(s.Name) }

func (s CTSite) validate() error {
	switch {
	case Slug(s.Name) == "":
		return errors.New("ct site has no name")
	case s.Patients < 1 || s.Patients > 10000 || s.SlicesPer < 1 || s.SlicesPer > 512:
		return fmt.Errorf("ct site %q: %d patients of %d slices; want 1..10000 and 1..512", s.Name, s.Patients, s.SlicesPer)
	case s.Size < MinSize || s.Size > 512 || s.Size%4 != 0:
		return fmt.Errorf("ct site %q: size %d; want a multiple of 4 in %d..512", s.Name, s.Size, MinSize)
	case !(s.NoiseHU >= 0 && s.NoiseHU < 500) || !(s.OrganHU > -1000 && s.OrganHU < 1000) || !(s.OrganScale > 0.1 && s.OrganScale < 3):
		return fmt.Errorf("ct site %q: noise %v HU, organ %v HU, organ scale %v out of range", s.Name, s.NoiseHU, s.OrganHU, s.OrganScale)
	}
	return nil
}

// CTSlice is one generated slice: stored values (HU + 1024) and the true
// mask of the organ (0 or 1).
type CTSlice struct {
	Pixels []uint16
	Mask   []uint8
}

// GenerateCT draws the site's slices, patient by patient, from seed.
func GenerateCT(s CTSite, seed int64) ([]CTSlice, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	s1, s2 := streamSeed(seed, s.Name, 8)
	rng := rand.New(rand.NewPCG(s1, s2))
	out := make([]CTSlice, 0, s.Patients*s.SlicesPer)
	n := float64(s.Size)
	for p := 0; p < s.Patients; p++ {
		// The body: an ellipse filling most of the field of view.
		bx, by := n/2+rng.NormFloat64()*n*0.02, n/2+rng.NormFloat64()*n*0.02
		ba, bb := n*(0.40+0.05*rng.Float64()), n*(0.30+0.05*rng.Float64())
		// The organ: an ellipsoid on the patient's right (image left),
		// centred in z somewhere in the middle of the stack.
		ox, oy := bx-ba*(0.35+0.15*rng.Float64()), by+bb*(-0.1+0.3*rng.Float64())
		oa := ba * 0.38 * s.OrganScale * (0.8 + 0.4*rng.Float64())
		ob := bb * 0.45 * s.OrganScale * (0.8 + 0.4*rng.Float64())
		oz, oc := 0.5+0.05*rng.NormFloat64(), 0.45+0.15*rng.Float64()
		rot := 0.5 * (rng.Float64() - 0.5)
		// A distractor: a round structure of similar density on the other side (a kidney's cortex, the bowel).
		kx, ky, kr := bx+ba*0.45, by+bb*0.2, n*0.06*(0.8+0.4*rng.Float64())
		// The spine: bone behind the centre.
		sx, sy, sr := bx, by+bb*0.7, n*0.07
		for z := 0; z < s.SlicesPer; z++ {
			zz := (float64(z) + 0.5) / float64(s.SlicesPer)
			dz := (zz - oz) / oc
			shrink := 1 - dz*dz // the ellipsoid's cross-section
			sl := CTSlice{Pixels: make([]uint16, s.Size*s.Size), Mask: make([]uint8, s.Size*s.Size)}
			for y := 0; y < s.Size; y++ {
				for x := 0; x < s.Size; x++ {
					fx, fy := float64(x)+0.5, float64(y)+0.5
					hu := -1000.0 // air
					if sq((fx-bx)/ba)+sq((fy-by)/bb) <= 1 {
						hu = 30
						if sq((fx-bx)/(ba-2))+sq((fy-by)/(bb-2)) > 1 {
							hu = -90 // subcutaneous fat
						}
						if sq(fx-kx)+sq(fy-ky) <= kr*kr {
							hu = s.OrganHU
						}
						if sq(fx-sx)+sq(fy-sy) <= sr*sr {
							hu = 600
						}
						if shrink > 0 {
							u, v := fx-ox, fy-oy
							u, v = u*math.Cos(rot)+v*math.Sin(rot), -u*math.Sin(rot)+v*math.Cos(rot)
							if sq(u/(oa*math.Sqrt(shrink)))+sq(v/(ob*math.Sqrt(shrink))) <= 1 {
								hu = s.OrganHU
								sl.Mask[y*s.Size+x] = 1
							}
						}
					}
					hu += rng.NormFloat64() * s.NoiseHU
					sl.Pixels[y*s.Size+x] = uint16(min(max(hu+1024, 0), 4095))
				}
			}
			out = append(out, sl)
		}
	}
	return out, nil
}

func sq(v float64) float64 { return v * v }

// WriteCT writes the site's slices under dir/<slug> in the layout a
// site agent's segmentation folder reads: NNNN.dcm (a CT image, 12 bits,
// rescale intercept −1024) with NNNN.mask.png beside it. It returns the
// number of slices written.
func WriteCT(dir string, s CTSite, seed int64) (int, error) {
	slices, err := GenerateCT(s, seed)
	if err != nil {
		return 0, fmt.Errorf("write ct: %w", err)
	}
	d := filepath.Join(dir, s.Slug())
	if err := os.MkdirAll(d, 0o755); err != nil {
		return 0, fmt.Errorf("write ct for %q: %w", s.Name, err)
	}
	s1, s2 := streamSeed(seed, s.Name, 9)
	rng := rand.New(rand.NewPCG(s1, s2))
	for i, sl := range slices {
		base := filepath.Join(d, fmt.Sprintf("%04d", i))
		f := ctFile(sl, s, rng)
		if err := imaging.WriteFile(base+".dcm", f); err != nil {
			return 0, fmt.Errorf("write ct for %q slice %d: %w", s.Name, i, err)
		}
		if err := writeMaskPNG(base+".mask.png", sl.Mask, s.Size); err != nil {
			return 0, fmt.Errorf("write ct mask for %q slice %d: %w", s.Name, i, err)
		}
	}
	return len(slices), nil
}

func writeMaskPNG(path string, mask []uint8, size int) (err error) {
	img := image.NewGray(image.Rect(0, 0, size, size))
	for k, v := range mask {
		img.Pix[k] = 255 * v
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return png.Encode(f, img)
}

// ctFile is a slice as a CT image with fake identifiers and a soft-tissue
// window, like a scanner writes.
func ctFile(sl CTSlice, s CTSite, rng *rand.Rand) imaging.SyntheticFile {
	return imaging.SyntheticFile{
		Pixels: sl.Pixels, Rows: s.Size, Columns: s.Size, BitsStored: 12, Modality: "CT",
		PatientName: "ZZSYNTH^CT", PatientID: fmt.Sprintf("ZZ%08d", rng.IntN(1e8)),
		StudyInstanceUID: uid(rng), SeriesInstanceUID: uid(rng), SOPInstanceUID: uid(rng),
		InstitutionName: s.Name, StudyDescription: "CT ABDOMEN", StudyDate: "20250101",
		RescaleSlope: 1, RescaleIntercept: -1024, WindowCenter: 40, WindowWidth: 400,
	}
}
