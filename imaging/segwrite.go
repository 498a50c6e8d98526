package imaging

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strconv"
	"time"
)

// Code is one coded concept (Code Value, Coding Scheme Designator, Code Meaning).
type Code struct {
	Value, Scheme, Meaning string
}

// SegSource is one source image and the binary mask a model produced for it.
// The mask is MaskRows x MaskColumns (the model's input size), values 0 or nonzero;
// EncodeSegmentation resamples it to the source's Rows x Columns.
type SegSource struct {
	Image                 *Image
	Mask                  []uint8
	MaskRows, MaskColumns int
}

// SegOptions names what the SEG says about its one segment and its author.
type SegOptions struct {
	SegmentLabel string
	// AlgorithmName is the model name and version, e.g. "liver-unet v3".
	AlgorithmName string
	// Category and Type are the Segmented Property Category and Type codes.
	Category, Type Code
	// ContentLabel is a CS code string (upper case, digits, space, underscore; at most 16).
	ContentLabel   string
	ContentCreator string // PN, e.g. "CONCORD^SITE-AGENT"
	SeriesNumber   int
	// Now stamps Content Date/Time; zero means time.Now().
	Now time.Time
	// SeriesInstanceUID and SOPInstanceUID, when set, name the SEG; empty
	// means new random UIDs. A caller that may write the SEG of the same
	// result again (a study sent twice) derives them from the result, so
	// the copies are one instance rather than two.
	SeriesInstanceUID, SOPInstanceUID string
}

// SegWritten is what EncodeSegmentation made.
type SegWritten struct {
	Bytes                             []byte
	SeriesInstanceUID, SOPInstanceUID string
	StudyInstanceUID                  string
	// Masks are the resampled masks written, one per source, Rows*Columns 0/1 each.
	Masks [][]uint8
}

// Tags the writer uses beyond those of the reader.
const (
	tagFrameOfRef  Tag = 0x00200052
	tagImagePos    Tag = 0x00200032
	tagImageOrient Tag = 0x00200037
	tagPixSpacing  Tag = 0x00280030
	tagSliceThick  Tag = 0x00180050
)

// NewUID returns a 2.25 UID from 128 random bits (PS3.5 B.2).
func NewUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}

// ResampleNearest resizes a rows x cols mask to outRows x outCols by nearest
// neighbour: output pixel (r,c) takes input ((2r+1)*rows/(2*outRows), same for
// columns), the input pixel whose area holds the output pixel's centre. Labels stay
// labels (no interpolated in-between values).
func ResampleNearest(mask []uint8, rows, cols, outRows, outCols int) ([]uint8, error) {
	if rows < 1 || cols < 1 || outRows < 1 || outCols < 1 || len(mask) != rows*cols {
		return nil, fmt.Errorf("resample mask: %d values for %dx%d to %dx%d", len(mask), rows, cols, outRows, outCols)
	}
	out := make([]uint8, outRows*outCols)
	for r := 0; r < outRows; r++ {
		sr := (2*r + 1) * rows / (2 * outRows)
		for c := 0; c < outCols; c++ {
			sc := (2*c + 1) * cols / (2 * outCols)
			out[r*outCols+c] = mask[sr*cols+sc]
		}
	}
	return out, nil
}

// WriteSegmentation encodes a SEG (see EncodeSegmentation) and writes it to path.
func WriteSegmentation(path string, src []SegSource, opt SegOptions) (*SegWritten, error) {
	w, err := EncodeSegmentation(src, opt)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, w.Bytes, 0o644); err != nil {
		return nil, fmt.Errorf("write segmentation: %w", noPath(err))
	}
	return w, nil
}

// EncodeSegmentation writes a binary DICOM Segmentation (one segment, one frame per
// source image, frames 1-bit packed) in explicit VR little endian. All sources must be
// one series of one study with the same Rows x Columns. The SEG gets new Series and SOP
// Instance UIDs but keeps the study and patient identifiers of the sources: it goes
// back to the hospital's PACS next to the images it segments.
func EncodeSegmentation(src []SegSource, opt SegOptions) (*SegWritten, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("encode segmentation: no source images")
	}
	if opt.SegmentLabel == "" || opt.AlgorithmName == "" {
		return nil, fmt.Errorf("encode segmentation: segment label and algorithm name are required")
	}
	for _, c := range []Code{opt.Category, opt.Type} {
		if c.Value == "" || c.Scheme == "" || c.Meaning == "" {
			return nil, fmt.Errorf("encode segmentation: segmented property codes need value, scheme and meaning")
		}
	}
	first := src[0].Image
	if first == nil || first.File == nil {
		return nil, fmt.Errorf("encode segmentation: source 0 has no image")
	}
	rows, cols := first.Rows, first.Columns
	w := &SegWritten{SeriesInstanceUID: opt.SeriesInstanceUID, SOPInstanceUID: opt.SOPInstanceUID, StudyInstanceUID: first.StudyInstanceUID}
	for _, u := range []*string{&w.SeriesInstanceUID, &w.SOPInstanceUID} {
		if *u == "" {
			*u = NewUID()
		} else if !ValidUID(*u) {
			return nil, fmt.Errorf("encode segmentation: the given series or SOP instance uid is not a valid UID")
		}
	}
	positioned := true
	for i, s := range src {
		im := s.Image
		if im == nil || im.File == nil {
			return nil, fmt.Errorf("encode segmentation: source %d has no image", i)
		}
		if im.StudyInstanceUID != first.StudyInstanceUID || im.SeriesInstanceUID != first.SeriesInstanceUID {
			return nil, fmt.Errorf("encode segmentation: source %d is from another study or series", i)
		}
		if im.Rows != rows || im.Columns != cols {
			return nil, fmt.Errorf("encode segmentation: source %d is %dx%d, source 0 is %dx%d", i, im.Rows, im.Columns, rows, cols)
		}
		if !ValidUID(im.SOPInstanceUID) || !ValidUID(im.SOPClassUID) {
			return nil, fmt.Errorf("encode segmentation: source %d has an invalid SOP class or instance uid", i)
		}
		m, err := ResampleNearest(s.Mask, s.MaskRows, s.MaskColumns, rows, cols)
		if err != nil {
			return nil, fmt.Errorf("encode segmentation: source %d: %w", i, err)
		}
		for k, v := range m {
			if v != 0 {
				m[k] = 1
			}
		}
		w.Masks = append(w.Masks, m)
		d := im.File.Data
		if d.Find(tagImagePos) == nil || d.Find(tagImageOrient) == nil || d.Find(tagFrameOfRef) == nil {
			positioned = false
		}
	}
	if !ValidUID(first.StudyInstanceUID) || !ValidUID(first.SeriesInstanceUID) {
		return nil, fmt.Errorf("encode segmentation: sources have an invalid study or series uid")
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	label := opt.ContentLabel
	if label == "" {
		label = "SEGMENTATION"
	}
	seriesNo := opt.SeriesNumber
	if seriesNo == 0 {
		seriesNo = 9001
	}
	els := segHeader(first, w, opt, label, seriesNo, now, len(src))
	els = append(els, segReferences(src, positioned)...)
	els = append(els, segFrames(src, positioned)...)
	els = append(els, Element{Tag: tagPixelData, VR: "OB", Value: packBits(w.Masks)})
	meta := &Dataset{Elements: []Element{
		{Tag: 0x00020001, VR: "OB", Value: []byte{0, 1}},
		{Tag: 0x00020002, VR: "UI", Value: []byte(segmentationStorageSOPUID)},
		{Tag: tagMediaSOPInstance, VR: "UI", Value: []byte(w.SOPInstanceUID)},
		{Tag: tagTransferSyntax, VR: "UI", Value: []byte(TSExplicitLE)},
		{Tag: 0x00020012, VR: "UI", Value: []byte(ImplementationClassUID)},
		{Tag: 0x00020013, VR: "SH", Value: []byte("CONCORD1")},
	}}
	b, err := encodeFile(meta, sortedDataset(els), TSExplicitLE)
	if err != nil {
		return nil, fmt.Errorf("encode segmentation: %w", err)
	}
	w.Bytes = b
	return w, nil
}

// copiedFromSource are the Patient and General Study attributes the SEG keeps, with
// the VR the writer gives them (the source may be implicit VR).
var copiedFromSource = []struct {
	tag Tag
	vr  string
}{
	{0x00080005, "CS"}, // Specific Character Set: the copied names are in it
	{0x00080020, "DA"}, {0x00080030, "TM"}, {0x00080050, "SH"}, {0x00080090, "PN"},
	{0x00081030, "LO"},
	{0x00100010, "PN"}, {0x00100020, "LO"}, {0x00100030, "DA"}, {0x00100040, "CS"},
	{0x00200010, "SH"},
}

// type2 are attributes that must be present, possibly empty.
var type2 = []Tag{0x00080020, 0x00080030, 0x00080050, 0x00080090, 0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00200010}

func segHeader(first *Image, w *SegWritten, opt SegOptions, label string, seriesNo int, now time.Time, frames int) []Element {
	s := func(v string) []byte { return []byte(v) }
	us := func(v int) []byte { b := make([]byte, 2); binary.LittleEndian.PutUint16(b, uint16(v)); return b }
	src := first.File.Data
	var els []Element
	for _, c := range copiedFromSource {
		if e := src.Find(c.tag); e != nil && e.Items == nil {
			els = append(els, Element{Tag: c.tag, VR: c.vr, Value: trimPad(e.Value)})
		}
	}
	have := map[Tag]bool{}
	for _, e := range els {
		have[e.Tag] = true
	}
	for _, t := range type2 {
		if !have[t] {
			els = append(els, Element{Tag: t, VR: vrOfCopied(t)})
		}
	}
	date, tm := now.UTC().Format("20060102"), now.UTC().Format("150405")
	els = append(els,
		Element{Tag: 0x00080008, VR: "CS", Value: s(`DERIVED\PRIMARY`)},
		Element{Tag: tagSOPClassUID, VR: "UI", Value: s(segmentationStorageSOPUID)},
		Element{Tag: tagSOPInstanceUID, VR: "UI", Value: s(w.SOPInstanceUID)},
		Element{Tag: 0x00080021, VR: "DA", Value: s(date)},
		Element{Tag: 0x00080023, VR: "DA", Value: s(date)},
		Element{Tag: 0x00080031, VR: "TM", Value: s(tm)},
		Element{Tag: 0x00080033, VR: "TM", Value: s(tm)},
		Element{Tag: tagModality, VR: "CS", Value: s("SEG")},
		Element{Tag: tagManufacturer, VR: "LO", Value: s("Concord")},
		Element{Tag: 0x0008103E, VR: "LO", Value: s("Segmentation " + opt.AlgorithmName)},
		Element{Tag: tagManufacturerModel, VR: "LO", Value: s("Concord site-agent")},
		Element{Tag: 0x00181000, VR: "LO", Value: s("1")},
		Element{Tag: 0x00181020, VR: "LO", Value: s(opt.AlgorithmName)},
		Element{Tag: tagStudyInstanceUID, VR: "UI", Value: s(first.StudyInstanceUID)},
		Element{Tag: tagSeriesInstanceUID, VR: "UI", Value: s(w.SeriesInstanceUID)},
		Element{Tag: 0x00200011, VR: "IS", Value: s(strconv.Itoa(seriesNo))},
		Element{Tag: 0x00200013, VR: "IS", Value: s("1")},
		Element{Tag: tagSamplesPerPixel, VR: "US", Value: us(1)},
		Element{Tag: tagPhotometric, VR: "CS", Value: s("MONOCHROME2")},
		Element{Tag: 0x00280008, VR: "IS", Value: s(strconv.Itoa(frames))},
		Element{Tag: tagRows, VR: "US", Value: us(first.Rows)},
		Element{Tag: tagColumns, VR: "US", Value: us(first.Columns)},
		Element{Tag: tagBitsAllocated, VR: "US", Value: us(1)},
		Element{Tag: tagBitsStored, VR: "US", Value: us(1)},
		Element{Tag: tagHighBit, VR: "US", Value: us(0)},
		Element{Tag: tagPixelRepresentation, VR: "US", Value: us(0)},
		Element{Tag: 0x00282110, VR: "CS", Value: s("00")},
		Element{Tag: tagSegmentationType, VR: "CS", Value: s("BINARY")},
		Element{Tag: 0x00700080, VR: "CS", Value: s(label)},
		Element{Tag: 0x00700081, VR: "LO", Value: s("Automatic segmentation by " + opt.AlgorithmName)},
		Element{Tag: 0x00700084, VR: "PN", Value: s(opt.ContentCreator)},
		Element{Tag: tagSegmentSequence, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{
			{Tag: tagSegmentNumber, VR: "US", Value: us(1)},
			{Tag: tagSegmentLabel, VR: "LO", Value: s(opt.SegmentLabel)},
			{Tag: 0x00620008, VR: "CS", Value: s("AUTOMATIC")},
			{Tag: 0x00620009, VR: "LO", Value: s(opt.AlgorithmName)},
			{Tag: 0x00620003, VR: "SQ", Items: []*Dataset{codeItem(opt.Category)}},
			{Tag: 0x0062000F, VR: "SQ", Items: []*Dataset{codeItem(opt.Type)}},
		})}},
	)
	if fr := src.Find(tagFrameOfRef); fr != nil {
		els = append(els, Element{Tag: tagFrameOfRef, VR: "UI", Value: trimPad(fr.Value)},
			Element{Tag: 0x00201040, VR: "LO"})
	}
	return els
}

func vrOfCopied(t Tag) string {
	for _, c := range copiedFromSource {
		if c.tag == t {
			return c.vr
		}
	}
	return "LO"
}

func codeItem(c Code) *Dataset {
	return sortedDataset([]Element{
		{Tag: 0x00080100, VR: "SH", Value: []byte(c.Value)},
		{Tag: 0x00080102, VR: "SH", Value: []byte(c.Scheme)},
		{Tag: 0x00080104, VR: "LO", Value: []byte(c.Meaning)},
	})
}

// segReferences makes the Common Instance Reference and Multi-frame Dimension modules.
func segReferences(src []SegSource, positioned bool) []Element {
	var inst []*Dataset
	for _, s := range src {
		inst = append(inst, refItem(s.Image))
	}
	dimOrg := NewUID()
	at := func(t Tag) []byte {
		b := make([]byte, 4)
		binary.LittleEndian.PutUint16(b, t.Group())
		binary.LittleEndian.PutUint16(b[2:], t.Element())
		return b
	}
	dims := []*Dataset{sortedDataset([]Element{
		{Tag: 0x00209164, VR: "UI", Value: []byte(dimOrg)},
		{Tag: 0x00209165, VR: "AT", Value: at(tagReferencedSegmentNum)},
		{Tag: 0x00209167, VR: "AT", Value: at(tagSegmentIdentification)},
	})}
	if positioned {
		dims = append(dims, sortedDataset([]Element{
			{Tag: 0x00209164, VR: "UI", Value: []byte(dimOrg)},
			{Tag: 0x00209165, VR: "AT", Value: at(tagImagePos)},
			{Tag: 0x00209167, VR: "AT", Value: at(0x00209113)},
		}))
	}
	return []Element{
		{Tag: 0x00081115, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{
			{Tag: 0x0008114A, VR: "SQ", Items: inst},
			{Tag: tagSeriesInstanceUID, VR: "UI", Value: []byte(src[0].Image.SeriesInstanceUID)},
		})}},
		{Tag: 0x00209221, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{{Tag: 0x00209164, VR: "UI", Value: []byte(dimOrg)}})}},
		{Tag: 0x00209222, VR: "SQ", Items: dims},
	}
}

func refItem(im *Image) *Dataset {
	return sortedDataset([]Element{
		{Tag: 0x00081150, VR: "UI", Value: []byte(im.SOPClassUID)},
		{Tag: tagReferencedSOPInstance, VR: "UI", Value: []byte(im.SOPInstanceUID)},
	})
}

// segFrames makes the shared and per-frame functional groups. Frames are in source
// order; without image positions the only dimension is the segment number.
func segFrames(src []SegSource, positioned bool) []Element {
	first := src[0].Image.File.Data
	var measures []Element
	if ps := first.Find(tagPixSpacing); ps != nil {
		measures = append(measures, Element{Tag: tagPixSpacing, VR: "DS", Value: trimPad(ps.Value)})
		th := first.Find(tagSliceThick)
		if th != nil && len(trimPad(th.Value)) > 0 {
			measures = append(measures, Element{Tag: tagSliceThick, VR: "DS", Value: trimPad(th.Value)})
		}
	}
	var shared []Element
	if len(measures) > 0 {
		shared = append(shared, Element{Tag: 0x00289110, VR: "SQ", Items: []*Dataset{sortedDataset(measures)}})
	}
	if positioned {
		shared = append(shared, Element{Tag: 0x00209116, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{
			{Tag: tagImageOrient, VR: "DS", Value: trimPad(first.Find(tagImageOrient).Value)}})}})
	}
	code := func(v, m string) *Dataset { return codeItem(Code{Value: v, Scheme: "DCM", Meaning: m}) }
	ul := func(vs ...int) []byte {
		b := make([]byte, 4*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
		}
		return b
	}
	var per []*Dataset
	for i, s := range src {
		idx := []int{1}
		if positioned {
			idx = append(idx, i+1)
		}
		srcItem := refItem(s.Image)
		srcItem.Elements = append(srcItem.Elements, Element{Tag: 0x0040A170, VR: "SQ",
			Items: []*Dataset{code("121322", "Source image for image processing operation")}})
		f := []Element{
			{Tag: 0x00209111, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{{Tag: 0x00209157, VR: "UL", Value: ul(idx...)}})}},
			{Tag: tagDerivationImageSeq, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{
				{Tag: 0x00089215, VR: "SQ", Items: []*Dataset{code("113076", "Segmentation")}},
				{Tag: tagSourceImageSeq, VR: "SQ", Items: []*Dataset{sortedDataset(srcItem.Elements)}},
			})}},
			{Tag: tagSegmentIdentification, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{
				{Tag: tagReferencedSegmentNum, VR: "US", Value: []byte{1, 0}}})}},
		}
		if positioned {
			f = append(f, Element{Tag: 0x00209113, VR: "SQ", Items: []*Dataset{sortedDataset([]Element{
				{Tag: tagImagePos, VR: "DS", Value: trimPad(s.Image.File.Data.Find(tagImagePos).Value)}})}})
		}
		per = append(per, sortedDataset(f))
	}
	return []Element{
		{Tag: tagSharedGroups, VR: "SQ", Items: []*Dataset{sortedDataset(shared)}},
		{Tag: tagPerFrameGroups, VR: "SQ", Items: per},
	}
}

// packBits packs 0/1 masks frame after frame into one bit stream, least significant
// bit first (PS3.5 8.1.1); frames are not padded to byte boundaries.
func packBits(masks [][]uint8) []byte {
	n := 0
	for _, m := range masks {
		n += len(m)
	}
	out := make([]byte, (n+7)/8)
	k := 0
	for _, m := range masks {
		for _, v := range m {
			if v != 0 {
				out[k/8] |= 1 << uint(k%8)
			}
			k++
		}
	}
	return out
}

func trimPad(v []byte) []byte {
	for len(v) > 0 && (v[len(v)-1] == 0 || v[len(v)-1] == ' ') {
		v = v[:len(v)-1]
	}
	return append([]byte(nil), v...)
}

func sortedDataset(els []Element) *Dataset {
	sort.SliceStable(els, func(i, j int) bool { return els[i].Tag < els[j].Tag })
	return &Dataset{Elements: els}
}
