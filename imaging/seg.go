package imaging

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"strings"
)

// Tags of the Segmentation IOD.
const (
	tagSegmentSequence        Tag = 0x00620002
	tagSegmentNumber          Tag = 0x00620004
	tagSegmentLabel           Tag = 0x00620005
	tagSegmentationType       Tag = 0x00620001
	tagSegmentIdentification  Tag = 0x0062000A
	tagReferencedSegmentNum   Tag = 0x0062000B
	tagPerFrameGroups         Tag = 0x52009230
	tagSharedGroups           Tag = 0x52009229
	tagDerivationImageSeq     Tag = 0x00089124
	tagSourceImageSeq         Tag = 0x00082112
	tagReferencedSOPInstance  Tag = 0x00081155
	segmentationStorageSOPUID     = "1.2.840.10008.5.1.4.1.1.66.4"
)

// Segment is one entry of a DICOM SEG's Segment Sequence.
type Segment struct {
	Number int
	// Label is free text from the file; treat it as potentially identifying.
	Label string
}

// SegFrame is one mask frame: which source image and segment it belongs to.
type SegFrame struct {
	// SourceSOPInstanceUID is the raw UID of the image this frame segments (empty if
	// the file does not say); de-identify before recording.
	SourceSOPInstanceUID string
	Segment              int
	// Mask is Rows*Columns values: 0/1 for BINARY, 0..max for FRACTIONAL.
	Mask []uint8
}

// Segmentation is a decoded DICOM SEG.
type Segmentation struct {
	Rows, Columns int
	Type          string // BINARY or FRACTIONAL
	Segments      []Segment
	Frames        []SegFrame
}

// ReadSegmentation reads a DICOM Segmentation object and ties each frame to its source
// image and segment through the per-frame (or shared) functional groups.
func ReadSegmentation(path string) (*Segmentation, error) {
	im, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return SegmentationOf(im)
}

// IsSegmentation says whether im is a DICOM SEG (Segmentation Storage, or
// modality SEG).
func IsSegmentation(im *Image) bool {
	return im.SOPClassUID == segmentationStorageSOPUID || strings.EqualFold(im.Modality, "SEG")
}

// SegmentationOf is ReadSegmentation for an object already read (from a
// file, a PACS or a network peer).
func SegmentationOf(im *Image) (*Segmentation, error) {
	ds := im.File.Data
	if !IsSegmentation(im) {
		return nil, fmt.Errorf("read segmentation: sop class %s is not segmentation storage", im.SOPClassUID)
	}
	s := &Segmentation{Rows: im.Rows, Columns: im.Columns, Type: strings.ToUpper(ds.String(tagSegmentationType))}
	if seq := ds.Find(tagSegmentSequence); seq != nil {
		for _, it := range seq.Items {
			n, _ := it.Uint(tagSegmentNumber, 0)
			s.Segments = append(s.Segments, Segment{Number: n, Label: it.String(tagSegmentLabel)})
		}
	}
	if len(s.Segments) == 0 {
		return nil, fmt.Errorf("read segmentation: %w: no segment sequence (0062,0002)", ErrMalformed)
	}
	var perFrame []*Dataset
	if pf := ds.Find(tagPerFrameGroups); pf != nil {
		perFrame = pf.Items
	}
	var shared *Dataset
	if sg := ds.Find(tagSharedGroups); sg != nil && len(sg.Items) > 0 {
		shared = sg.Items[0]
	}
	for i := 0; i < im.Frames; i++ {
		raw, err := im.StoredFrame(i)
		if err != nil {
			return nil, fmt.Errorf("read segmentation frame %d: %w", i, err)
		}
		f := SegFrame{Mask: raw}
		var groups []*Dataset
		if i < len(perFrame) {
			groups = append(groups, perFrame[i])
		}
		if shared != nil {
			groups = append(groups, shared)
		}
		for _, g := range groups {
			if f.Segment == 0 {
				if si := g.Find(tagSegmentIdentification); si != nil && len(si.Items) > 0 {
					f.Segment, _ = si.Items[0].Uint(tagReferencedSegmentNum, 0)
				}
			}
			if f.SourceSOPInstanceUID == "" {
				f.SourceSOPInstanceUID = sourceUID(g)
			}
		}
		if f.Segment == 0 && len(s.Segments) == 1 {
			f.Segment = s.Segments[0].Number
		}
		s.Frames = append(s.Frames, f)
	}
	return s, nil
}

func sourceUID(g *Dataset) string {
	d := g.Find(tagDerivationImageSeq)
	if d == nil {
		return ""
	}
	for _, it := range d.Items {
		if src := it.Find(tagSourceImageSeq); src != nil {
			for _, s := range src.Items {
				if u := s.String(tagReferencedSOPInstance); u != "" {
					return u
				}
			}
		}
	}
	return ""
}

// Mask returns the union of the frames for one source image and segment (0 = any
// segment), or nil if the segmentation has no frame for that image.
func (s *Segmentation) Mask(sopInstanceUID string, segment int) []uint8 {
	var out []uint8
	for _, f := range s.Frames {
		if f.SourceSOPInstanceUID != sopInstanceUID || (segment != 0 && f.Segment != segment) {
			continue
		}
		if out == nil {
			out = make([]uint8, len(f.Mask))
		}
		for k, v := range f.Mask {
			if v > out[k] {
				out[k] = v
			}
		}
	}
	return out
}

// LoadPNGMask reads a PNG label mask (grey or paletted: the stored index or grey level is
// the label) and checks it is rows x columns.
func LoadPNGMask(path string, rows, cols int) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load mask: %w", noPath(err))
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("load mask: %w", noPath(err))
	}
	if cfg.Width != cols || cfg.Height != rows {
		return nil, fmt.Errorf("load mask: mask is %dx%d, image is %dx%d", cfg.Width, cfg.Height, cols, rows)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, fmt.Errorf("load mask: %w", err)
	}
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("load mask: %w", noPath(err))
	}
	out := make([]uint8, rows*cols)
	switch m := img.(type) {
	case *image.Paletted:
		for y := 0; y < rows; y++ {
			copy(out[y*cols:(y+1)*cols], m.Pix[y*m.Stride:y*m.Stride+cols])
		}
	case *image.Gray:
		for y := 0; y < rows; y++ {
			copy(out[y*cols:(y+1)*cols], m.Pix[y*m.Stride:y*m.Stride+cols])
		}
	default:
		for y := 0; y < rows; y++ {
			for x := 0; x < cols; x++ {
				r, _, _, _ := img.At(x, y).RGBA()
				out[y*cols+x] = uint8(r >> 8)
			}
		}
	}
	return out, nil
}
