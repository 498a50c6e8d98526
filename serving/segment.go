package serving

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/serving/fhirr4"
)

// DICOM tags read for a segment's size.
var (
	tagPixelSpacing   = imaging.NewTag(0x0028, 0x0030)
	tagSliceThickness = imaging.NewTag(0x0018, 0x0050)
	tagSliceSpacing   = imaging.NewTag(0x0018, 0x0088)
)

// The Segmented Property codes of the SEG's one segment. A job spec names
// no anatomy, so the SEG says only "tissue" (SNOMED CT 85756007) and the
// segment label (Config.SegmentLabel) names what was segmented.
var segTissue = imaging.Code{Value: "85756007", Scheme: "SCT", Meaning: "Tissue"}

// maxSegmentLabel bounds Config.SegmentLabel: it is a DICOM LO (64
// characters) in the SEG.
const maxSegmentLabel = 64

func segmentLabelOK(label string) error {
	if len(label) > maxSegmentLabel || strings.TrimSpace(label) != label || strings.ContainsAny(label, "\\") {
		return fmt.Errorf("serve: segment label %q: give at most %d characters without backslash or surrounding space", label, maxSegmentLabel)
	}
	for _, c := range label {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("serve: segment label contains a control character")
		}
	}
	return nil
}

// inferSegmentation runs a segmentation model on one study: the largest
// series of the study (by instances; the first to arrive on a tie) is
// segmented image by image, each mask is resampled back to its image's
// grid, and the masks become one DICOM SEG that references the series.
// Instances of other series, multi-frame images and images of another size
// than the series' first are marked failed in out: one SEG covers one
// series of same-sized single-frame images.
func (s *Server) inferSegmentation(insts []instance, idx []int, out []outcome) (studyResult, error) {
	m := s.model
	pl := m.Pipeline
	sr := studyResult{}
	series := pickSeries(insts, idx)
	var first *imaging.Image
	ds := learning.Dataset{C: pl.Channels, H: pl.Height, W: pl.Width}
	per := pl.Channels * pl.Height * pl.Width
	var used []*imaging.Image
	for _, i := range idx {
		im := insts[i].image
		switch {
		case im.SeriesInstanceUID != series:
			out[i].reason, out[i].why = ReasonProcessing, "another series of the study: a segmentation result covers one series"
			continue
		case im.Frames != 1:
			out[i].reason, out[i].why = ReasonProcessing, "multi-frame images are not segmented"
			continue
		case first != nil && (im.Rows != first.Rows || im.Columns != first.Columns):
			out[i].reason, out[i].why = ReasonProcessing, "image size differs from the rest of its series"
			continue
		}
		px, err := pl.Apply(im, 0)
		if err != nil || len(px) != per {
			out[i].reason, out[i].why = ReasonProcessing, "pipeline: "+imaging.Reason(err)
			continue
		}
		if first == nil {
			first = im
		}
		ds.X = append(ds.X, px...)
		ds.N++
		used = append(used, im)
		sr.idx = append(sr.idx, i)
		sr.files = append(sr.files, insts[i].raw)
	}
	if ds.N == 0 {
		return sr, &unservable{errors.New("no instance of the study could be prepared for the model")}
	}
	probs, err := m.Net.Predict(ds)
	if err != nil {
		return sr, &unservable{fmt.Errorf("run the model: %w", err)}
	}
	hw := pl.Height * pl.Width
	src := make([]imaging.SegSource, len(used))
	for n, im := range used {
		mask := make([]uint8, hw)
		for k, p := range probs[n*hw : (n+1)*hw] {
			if float64(p) >= m.Threshold {
				mask[k] = 1
			}
		}
		src[n] = imaging.SegSource{Image: im, Mask: mask, MaskRows: pl.Height, MaskColumns: pl.Width}
	}
	r := s.newResult(first)
	mf := m.Manifest
	id := r.ID
	label := s.cfg.SegmentLabel
	w, err := imaging.EncodeSegmentation(src, imaging.SegOptions{
		SegmentLabel: label, AlgorithmName: mf.Name + " " + mf.Version,
		Category: segTissue, Type: segTissue, ContentLabel: "CONCORD", ContentCreator: "CONCORD^SITE-AGENT",
		SeriesInstanceUID: derivedUID(id, "seg-series"), SOPInstanceUID: derivedUID(id, "seg-instance"),
	})
	if err != nil {
		return sr, &unservable{fmt.Errorf("write the DICOM SEG: %w", err)}
	}
	sr.seg = w.Bytes
	found := 0
	pixels := 0
	for _, mk := range w.Masks {
		n := 0
		for _, v := range mk {
			n += int(v)
		}
		if n > 0 {
			found++
		}
		pixels += n
	}
	decision := "no " + label + " found"
	if found > 0 {
		decision = fmt.Sprintf("%s found on %d of %d images", label, found, len(w.Masks))
	}
	r.Task, r.Threshold, r.Decision, r.SegInstanceUID = fhirr4.TaskSegmentation, m.Threshold, decision, w.SOPInstanceUID
	if vol, area, ok := segmentSize(first, pixels); ok && vol >= 0 {
		r.SegmentVolumesML = map[string]float64{label: vol}
	} else if ok {
		r.SegmentAreasMM2 = map[string]float64{label: area}
	}
	sr.result = r
	return sr, nil
}

// pickSeries is the series of the study with the most instances; on a tie,
// the one whose first instance arrived first.
func pickSeries(insts []instance, idx []int) string {
	count := map[string]int{}
	for _, i := range idx {
		count[insts[i].image.SeriesInstanceUID]++
	}
	best := ""
	for _, i := range idx {
		if u := insts[i].image.SeriesInstanceUID; best == "" || count[u] > count[best] {
			best = u
		}
	}
	return best
}

// segmentSize converts a foreground pixel count into a size from the
// series' first image: a volume in mL (vol >= 0) when it gives pixel
// spacing and a slice thickness (or spacing between slices), an area in
// mm² (vol < 0) when only pixel spacing; ok is false when it gives
// neither, since a pixel count alone is no size a clinician can use.
func segmentSize(im *imaging.Image, pixels int) (vol, area float64, ok bool) {
	d := im.File.Data
	ps := d.Strings(tagPixelSpacing)
	if len(ps) != 2 {
		return 0, 0, false
	}
	dr, err1 := strconv.ParseFloat(strings.TrimSpace(ps[0]), 64)
	dc, err2 := strconv.ParseFloat(strings.TrimSpace(ps[1]), 64)
	if err1 != nil || err2 != nil || !(dr > 0 && dr < 1e3) || !(dc > 0 && dc < 1e3) {
		return 0, 0, false
	}
	area = float64(pixels) * dr * dc
	for _, t := range []imaging.Tag{tagSliceSpacing, tagSliceThickness} {
		if dz, err := strconv.ParseFloat(strings.TrimSpace(d.String(t)), 64); err == nil && dz > 0 && dz < 1e3 {
			return area * dz / 1000, area, true
		}
	}
	return -1, area, true
}

// derivedUID is a 2.25 UID (PS3.5 B.2) from a hash of the result id and a
// role: the SEG written for a study sent twice has the same UIDs, so the
// FHIR result (created once) names the SEG on disk.
func derivedUID(resultID, role string) string {
	h := sha256.Sum256([]byte("concord serving uid v1\n" + role + "\n" + resultID))
	return "2.25." + new(big.Int).SetBytes(h[:16]).String()
}
