package synth

import (
	"encoding/csv"
	"fmt"
	"hash/fnv"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/concord-fl/concord/imaging"
)

// Class folder names under a hospital's folder. Label 0 is ClassNormal and
// label 1 is ClassLesion; note that a loader numbering folders in sorted
// order would swap them, so read labels from the manifest.
const (
	ClassNormal = "normal"
	ClassLesion = "lesion"
)

// ManifestName is the file, in each hospital's folder, that lists its images.
const ManifestName = "manifest.csv"

// Manifest lists the DICOM files WriteDICOM wrote for one hospital.
type Manifest struct {
	Hospital string          // the hospital's name
	Dir      string          // the hospital's folder: dir/<slug>
	CSV      string          // Dir/manifest.csv: columns path,label
	Entries  []ManifestEntry // in sample order
}

// ManifestEntry is one written file.
type ManifestEntry struct {
	Path  string // relative to Manifest.Dir, slash-separated: "lesion/00007.dcm"
	Label int
}

// Positives counts the entries with label 1.
func (m Manifest) Positives() int {
	n := 0
	for _, e := range m.Entries {
		n += e.Label
	}
	return n
}

// WriteDICOM generates h's samples (as Generate does with the same seed)
// and writes each as a real DICOM file through the imaging package:
// dir/<slug>/{normal,lesion}/<index>.dcm, plus dir/<slug>/manifest.csv with
// columns path,label that imaging.LoadManifest reads. Every image gets its
// own study, series and SOP instance UIDs (2.25 form), fake patient
// identifiers, the hospital's name as InstitutionName, and a VOI window
// like a scanner's. Existing files of the same names are overwritten.
func WriteDICOM(dir string, h Hospital, seed int64) (Manifest, error) {
	samples, err := Generate(h, seed)
	if err != nil {
		return Manifest{}, fmt.Errorf("write dicom: %w", err)
	}
	m := Manifest{Hospital: h.Name, Dir: filepath.Join(dir, h.Slug())}
	m.CSV = filepath.Join(m.Dir, ManifestName)
	for _, c := range []string{ClassNormal, ClassLesion} {
		if err := os.MkdirAll(filepath.Join(m.Dir, c), 0o755); err != nil {
			return Manifest{}, fmt.Errorf("write dicom for %q: %w", h.Name, err)
		}
	}
	s1, s2 := streamSeed(seed, h.Name, 2)
	rng := rand.New(rand.NewPCG(s1, s2))
	// The scanner a sample was taken on comes from a stream of its own, so
	// that adding it left every other generated value as it was.
	s3, s4 := streamSeed(seed, h.Name, 3)
	rooms := scannerRooms(h)
	roomRNG := rand.New(rand.NewPCG(s3, s4))
	digits := len(strconv.Itoa(max(len(samples)-1, 9999)))
	for i, s := range samples {
		class := ClassNormal
		if s.Label == 1 {
			class = ClassLesion
		}
		rel := fmt.Sprintf("%s/%0*d.dcm", class, digits, i)
		center, width := voiWindow(s.Pixels)
		room := rooms[0]
		if roomRNG.IntN(4) == 0 {
			room = rooms[1]
		}
		f := imaging.SyntheticFile{
			Pixels:                 s.Pixels,
			Rows:                   s.Rows,
			Columns:                s.Cols,
			BitsStored:             h.BitsStored,
			Modality:               h.Modality,
			PatientName:            s.Patient.Name,
			PatientID:              s.Patient.ID,
			PatientBirthDate:       s.Patient.BirthDate,
			PatientSex:             []string{"F", "M"}[rng.IntN(2)],
			StudyInstanceUID:       uid(rng),
			SeriesInstanceUID:      uid(rng),
			SOPInstanceUID:         uid(rng),
			InstitutionName:        h.Name,
			AccessionNumber:        s.Patient.Accession,
			StudyDate:              fmt.Sprintf("%04d%02d%02d", 2023+rng.IntN(3), 1+rng.IntN(12), 1+rng.IntN(28)),
			ReferringPhysicianName: "ZZSYNTH^REFERRER",
			StudyDescription:       "CHEST PA",
			WindowCenter:           center,
			WindowWidth:            width,
			RescaleSlope:           1,
			Monochrome1:            s.Monochrome1,
			Manufacturer:           room.manufacturer,
			ManufacturerModelName:  room.model,
		}
		f.PatientAge = patientAge(f.PatientBirthDate, f.StudyDate)
		if err := imaging.WriteFile(filepath.Join(m.Dir, filepath.FromSlash(rel)), f); err != nil {
			return Manifest{}, fmt.Errorf("write dicom for %q image %d: %w", h.Name, i, err)
		}
		m.Entries = append(m.Entries, ManifestEntry{Path: rel, Label: s.Label})
	}
	if err := writeManifest(m); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func writeManifest(m Manifest) (err error) {
	f, err := os.Create(m.CSV)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write manifest: %w", cerr)
		}
	}()
	w := csv.NewWriter(f)
	rows := [][]string{{"path", "label"}}
	for _, e := range m.Entries {
		rows = append(rows, []string{e.Path, strconv.Itoa(e.Label)})
	}
	if err := w.WriteAll(rows); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// uid returns a UID under the 2.25 root (ITU-T X.667): "2.25." and a random
// 128-bit integer in decimal, at most 44 characters.
func uid(rng *rand.Rand) string {
	var n big.Int
	n.SetUint64(rng.Uint64() | 1) // never zero, so no leading-zero component
	n.Lsh(&n, 64)
	n.Or(&n, new(big.Int).SetUint64(rng.Uint64()))
	return "2.25." + n.String()
}

// voiWindow is the window a scanner's processing would suggest: the
// 1st..99th percentile of the stored values.
func voiWindow(p []uint16) (center, width float64) {
	s := slices.Clone(p)
	slices.Sort(s)
	lo, hi := float64(s[len(s)/100]), float64(s[len(s)*99/100])
	return (lo + hi) / 2, max(hi-lo, 1)
}

// scanner is one imaging room's device.
type scanner struct{ manufacturer, model string }

// syntheticModels are made-up model names: the generator names no real product.
var syntheticModels = []string{"SYNTH-DR 200", "SYNTH-DR 400", "SYNTH-CR 30", "SYNTH-DR 550", "SYNTH-MOBILE 10"}

// scannerRooms gives a hospital two rooms: its main scanner (its own
// manufacturer), which takes three images in four, and a second one from
// another manufacturer, so that a site's subgroups by device are not
// trivially one.
func scannerRooms(h Hospital) [2]scanner {
	f := fnv.New32a()
	f.Write([]byte(h.Name))
	k := int(f.Sum32() % uint32(len(syntheticModels)))
	other := manufacturers[(slices.Index(manufacturers, h.Manufacturer)+1+k%3)%len(manufacturers)]
	return [2]scanner{{h.Manufacturer, syntheticModels[k]}, {other, syntheticModels[(k+2)%len(syntheticModels)]}}
}

// patientAge is the DICOM age string (nnnY) at the study date, computed
// from the fake birth date; "" when either is not a YYYYMMDD date.
func patientAge(birth, study string) string {
	b, err1 := time.Parse("20060102", birth)
	s, err2 := time.Parse("20060102", study)
	if err1 != nil || err2 != nil || s.Before(b) {
		return ""
	}
	years := s.Year() - b.Year()
	if s.Month() < b.Month() || s.Month() == b.Month() && s.Day() < b.Day() {
		years--
	}
	return fmt.Sprintf("%03dY", min(years, 999))
}
