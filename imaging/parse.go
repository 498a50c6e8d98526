package imaging

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Tag is a DICOM attribute tag, group in the high 16 bits.
type Tag uint32

// NewTag builds a tag from its group and element numbers.
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group is the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element is the tag's element number.
func (t Tag) Element() uint16 { return uint16(t) }

func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// Tags the reader and the de-identifier use by name.
const (
	tagMetaGroupLength     Tag = 0x00020000
	tagTransferSyntax      Tag = 0x00020010
	tagMediaSOPInstance    Tag = 0x00020003
	tagSOPClassUID         Tag = 0x00080016
	tagSOPInstanceUID      Tag = 0x00080018
	tagModality            Tag = 0x00080060
	tagBurnedIn            Tag = 0x00280301
	tagStudyInstanceUID    Tag = 0x0020000D
	tagSeriesInstanceUID   Tag = 0x0020000E
	tagSamplesPerPixel     Tag = 0x00280002
	tagPhotometric         Tag = 0x00280004
	tagPlanarConfiguration Tag = 0x00280006
	tagNumberOfFrames      Tag = 0x00280008
	tagRows                Tag = 0x00280010
	tagColumns             Tag = 0x00280011
	tagBitsAllocated       Tag = 0x00280100
	tagBitsStored          Tag = 0x00280101
	tagHighBit             Tag = 0x00280102
	tagPixelRepresentation Tag = 0x00280103
	tagWindowCenter        Tag = 0x00281050
	tagWindowWidth         Tag = 0x00281051
	tagRescaleIntercept    Tag = 0x00281052
	tagRescaleSlope        Tag = 0x00281053
	tagRedDescriptor       Tag = 0x00281101
	tagGreenDescriptor     Tag = 0x00281102
	tagBlueDescriptor      Tag = 0x00281103
	tagRedData             Tag = 0x00281201
	tagGreenData           Tag = 0x00281202
	tagBlueData            Tag = 0x00281203
	tagSegRedData          Tag = 0x00281221
	tagSegGreenData        Tag = 0x00281222
	tagSegBlueData         Tag = 0x00281223
	tagPixelData           Tag = 0x7FE00010
	tagFloatPixelData      Tag = 0x7FE00008
	tagDoubleFloatPixels   Tag = 0x7FE00009
	tagItem                Tag = 0xFFFEE000
	tagItemDelim           Tag = 0xFFFEE00D
	tagSeqDelim            Tag = 0xFFFEE0DD
)

// Transfer syntax UIDs.
const (
	TSImplicitLE   = "1.2.840.10008.1.2"
	TSExplicitLE   = "1.2.840.10008.1.2.1"
	TSDeflatedLE   = "1.2.840.10008.1.2.1.99"
	TSExplicitBE   = "1.2.840.10008.1.2.2"
	TSRLE          = "1.2.840.10008.1.2.5"
	TSJPEGBaseline = "1.2.840.10008.1.2.4.50"
	TSJPEGExtended = "1.2.840.10008.1.2.4.51"
	TSJPEGLossless = "1.2.840.10008.1.2.4.57"
	TSJPEGLossSV1  = "1.2.840.10008.1.2.4.70"
	TSJPEGLSLossl  = "1.2.840.10008.1.2.4.80"
	TSJPEGLSNear   = "1.2.840.10008.1.2.4.81"
	TSJ2KLossless  = "1.2.840.10008.1.2.4.90"
	TSJ2K          = "1.2.840.10008.1.2.4.91"
)

var tsNames = map[string]string{
	TSImplicitLE:              "Implicit VR Little Endian",
	TSExplicitLE:              "Explicit VR Little Endian",
	TSDeflatedLE:              "Deflated Explicit VR Little Endian",
	TSExplicitBE:              "Explicit VR Big Endian",
	TSRLE:                     "RLE Lossless",
	TSJPEGBaseline:            "JPEG Baseline (Process 1)",
	TSJPEGExtended:            "JPEG Extended (Process 2 & 4)",
	TSJPEGLossless:            "JPEG Lossless (Process 14)",
	TSJPEGLossSV1:             "JPEG Lossless SV1 (Process 14, selection value 1)",
	TSJPEGLSLossl:             "JPEG-LS Lossless",
	TSJPEGLSNear:              "JPEG-LS Near-Lossless",
	TSJ2KLossless:             "JPEG 2000 Lossless",
	TSJ2K:                     "JPEG 2000",
	"1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
	"1.2.840.10008.1.2.4.202": "HTJ2K Lossless RPCL",
	"1.2.840.10008.1.2.4.203": "HTJ2K",
	"1.2.840.10008.1.2.4.100": "MPEG2 Main Profile",
	"1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264",
	"1.2.840.10008.1.2.4.107": "HEVC/H.265",
}

// TransferSyntaxName is the human name of a transfer syntax UID, or the UID itself.
func TransferSyntaxName(uid string) string {
	if n, ok := tsNames[uid]; ok {
		return n + " (" + uid + ")"
	}
	return uid
}

// Sentinel errors; callers compare with errors.Is.
var (
	// ErrNotDICOM means the bytes are not a DICOM data set at all.
	ErrNotDICOM = errors.New("not a dicom file")
	// ErrTruncated means the file ends before a declared element or the pixel data ends.
	ErrTruncated = errors.New("dicom file is truncated")
	// ErrMalformed means the element stream breaks the encoding rules.
	ErrMalformed = errors.New("malformed dicom data")
	// ErrUnsupported means the file is valid but uses an encoding this reader does not decode.
	ErrUnsupported = errors.New("unsupported dicom encoding")
	// ErrNoPixelData means the object carries no image (a report, plan, structure set...).
	ErrNoPixelData = errors.New("dicom object has no pixel data")
	// ErrTooLarge means the declared image exceeds the reader's limits.
	ErrTooLarge = errors.New("dicom image exceeds limits")
)

// Element is one data element. Value aliases the file's bytes, in the file's byte order.
type Element struct {
	Tag Tag
	VR  string
	// Value is the raw value; empty for sequences and encapsulated pixel data.
	Value []byte
	// Items holds the items of a sequence (VR SQ, or UN/implicit values that parse as one).
	Items []*Dataset
	// Fragments holds encapsulated pixel data: the basic offset table first, then fragments.
	Fragments [][]byte
	// Undefined is true when the element was written with undefined length.
	Undefined bool
}

// Dataset is an ordered list of elements with the byte order they were read in.
type Dataset struct {
	Elements  []Element
	BigEndian bool
	Implicit  bool
}

func (ds *Dataset) order() binary.ByteOrder {
	if ds.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// Find returns the element with the tag, or nil. Elements are sorted in a valid file,
// so a binary search would do; files in the wild are not always sorted, so scan.
func (ds *Dataset) Find(t Tag) *Element {
	for i := range ds.Elements {
		if ds.Elements[i].Tag == t {
			return &ds.Elements[i]
		}
	}
	return nil
}

// String returns a text value with padding removed ("" if absent).
func (ds *Dataset) String(t Tag) string {
	e := ds.Find(t)
	if e == nil {
		return ""
	}
	return strings.TrimRight(string(e.Value), " \x00")
}

// Strings splits a multi-valued text element on backslash.
func (ds *Dataset) Strings(t Tag) []string {
	s := ds.String(t)
	if s == "" {
		return nil
	}
	parts := strings.Split(s, `\`)
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// Float returns the first value of a DS/IS/FL/FD element.
func (ds *Dataset) Float(t Tag) (float64, bool) {
	e := ds.Find(t)
	if e == nil {
		return 0, false
	}
	switch e.VR {
	case "FL":
		if len(e.Value) >= 4 {
			return float64(float32FromBits(ds.order().Uint32(e.Value))), true
		}
		return 0, false
	case "FD":
		if len(e.Value) >= 8 {
			return float64FromBits(ds.order().Uint64(e.Value)), true
		}
		return 0, false
	}
	vals := ds.Strings(t)
	if len(vals) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(vals[0], 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// Uint returns the value-th unsigned short/long of a US/UL/SS/SL element, or a decimal IS.
func (ds *Dataset) Uint(t Tag, index int) (int, bool) {
	e := ds.Find(t)
	if e == nil {
		return 0, false
	}
	bo := ds.order()
	switch e.VR {
	case "UL", "SL":
		if len(e.Value) >= 4*(index+1) {
			return int(bo.Uint32(e.Value[4*index:])), true
		}
		return 0, false
	case "IS", "DS":
		vals := ds.Strings(t)
		if index >= len(vals) {
			return 0, false
		}
		n, err := strconv.Atoi(vals[index])
		return n, err == nil
	}
	// US, SS, OW, and implicit-VR values of the US tags this package reads.
	if len(e.Value) >= 2*(index+1) {
		return int(bo.Uint16(e.Value[2*index:])), true
	}
	return 0, false
}

// Limits bound the work the reader does on one input.
type Limits struct {
	// MaxFileBytes refuses larger inputs before reading them.
	MaxFileBytes int64
	// MaxPixels bounds rows*columns*frames*samples.
	MaxPixels int64
	// MaxDepth bounds sequence nesting.
	MaxDepth int
	// MaxElements bounds the element count over the whole file.
	MaxElements int
}

// DefaultLimits suit a 2-core site agent: a 1 GiB file, 2^30 samples, nesting 32.
var DefaultLimits = Limits{MaxFileBytes: 1 << 30, MaxPixels: 1 << 30, MaxDepth: 32, MaxElements: 1 << 20}

var explicitVRs = map[string]bool{
	"AE": true, "AS": true, "AT": true, "CS": true, "DA": true, "DS": true, "DT": true, "FD": true, "FL": true,
	"IS": true, "LO": true, "LT": true, "OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true,
	"PN": true, "SH": true, "SL": true, "SQ": true, "SS": true, "ST": true, "SV": true, "TM": true, "UC": true,
	"UI": true, "UL": true, "UN": true, "UR": true, "US": true, "UT": true, "UV": true,
}

// longVR says whether an explicit VR uses the 2 reserved bytes + 4-byte length form.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV":
		return true
	}
	return false
}

type parser struct {
	buf      []byte
	pos      int
	bo       binary.ByteOrder
	big      bool
	implicit bool
	lim      Limits
	count    int
	// headerOnly stops at the top-level pixel data element, noting where it starts.
	headerOnly  bool
	pixelOffset int
	pixelLength uint32
	stopped     bool
}

func (p *parser) errf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", kind, p.pos, fmt.Sprintf(format, args...))
}

// readTag reads a tag; the item/delimiter tags are always in the set's byte order.
func (p *parser) readTag() (Tag, error) {
	if len(p.buf)-p.pos < 4 {
		return 0, p.errf(ErrTruncated, "element tag cut off")
	}
	g := p.bo.Uint16(p.buf[p.pos:])
	e := p.bo.Uint16(p.buf[p.pos+2:])
	p.pos += 4
	return NewTag(g, e), nil
}

// header reads tag, VR and length of the next element.
func (p *parser) header() (tag Tag, vr string, length uint32, err error) {
	tag, err = p.readTag()
	if err != nil {
		return 0, "", 0, err
	}
	if tag.Group() == 0xFFFE {
		if len(p.buf)-p.pos < 4 {
			return 0, "", 0, p.errf(ErrTruncated, "item length cut off")
		}
		length = p.bo.Uint32(p.buf[p.pos:])
		p.pos += 4
		return tag, "", length, nil
	}
	if p.implicit {
		if len(p.buf)-p.pos < 4 {
			return 0, "", 0, p.errf(ErrTruncated, "length of %s cut off", tag)
		}
		length = p.bo.Uint32(p.buf[p.pos:])
		p.pos += 4
		return tag, implicitVR(tag), length, nil
	}
	if len(p.buf)-p.pos < 4 {
		return 0, "", 0, p.errf(ErrTruncated, "vr of %s cut off", tag)
	}
	vr = string(p.buf[p.pos : p.pos+2])
	if !explicitVRs[vr] {
		return 0, "", 0, p.errf(ErrMalformed, "element %s has invalid value representation %q", tag, printable(vr))
	}
	if longVR(vr) {
		if len(p.buf)-p.pos < 8 {
			return 0, "", 0, p.errf(ErrTruncated, "length of %s cut off", tag)
		}
		length = p.bo.Uint32(p.buf[p.pos+4:])
		p.pos += 8
		return tag, vr, length, nil
	}
	length = uint32(p.bo.Uint16(p.buf[p.pos+2:]))
	p.pos += 4
	return tag, vr, length, nil
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

const undefinedLength = 0xFFFFFFFF

// dataset reads elements until end (or an item delimiter when inItem). stopAt, if
// non-zero, ends reading before the first tag >= stopAt (used for the meta group).
func (p *parser) dataset(end int, depth int, inItem bool) (*Dataset, error) {
	if depth > p.lim.MaxDepth {
		return nil, p.errf(ErrMalformed, "sequences nested deeper than %d", p.lim.MaxDepth)
	}
	ds := &Dataset{BigEndian: p.big, Implicit: p.implicit}
	for p.pos < end {
		if depth == 0 && !inItem && end-p.pos < 8 && allZero(p.buf[p.pos:end]) {
			// Null padding after the last element, too short to be one (writers pad
			// odd-length deflated data sets, and pydicom stops reading below 8 bytes).
			p.pos = end
			break
		}
		p.count++
		if p.count > p.lim.MaxElements {
			return nil, p.errf(ErrTooLarge, "more than %d elements", p.lim.MaxElements)
		}
		start := p.pos
		tag, vr, length, err := p.header()
		if err != nil {
			return nil, err
		}
		if tag == tagItemDelim {
			if inItem {
				return ds, nil
			}
			continue // stray delimiter at top level: tolerated like dcmtk does
		}
		if tag.Group() == 0xFFFE && tag != tagSeqDelim && tag != tagItem {
			// Group FFFE holds only the item and delimiter tags (PS3.5 7.5).
			return nil, p.errf(ErrMalformed, "invalid tag %s", tag)
		}
		if tag == tagSeqDelim || tag == tagItem {
			if inItem {
				return nil, p.errf(ErrMalformed, "unexpected %s inside an item", tag)
			}
			if tag == tagSeqDelim {
				continue
			}
			return nil, p.errf(ErrMalformed, "item tag outside a sequence")
		}
		el := Element{Tag: tag, VR: vr}
		if p.headerOnly && depth == 0 && (tag == tagPixelData || tag == tagFloatPixelData || tag == tagDoubleFloatPixels) {
			el.Undefined = length == undefinedLength
			p.pixelOffset, p.pixelLength, p.stopped = p.pos, length, true
			ds.Elements = append(ds.Elements, el)
			return ds, nil
		}
		switch {
		case length == undefinedLength && tag == tagPixelData:
			el.Undefined = true
			if err := p.fragments(&el); err != nil {
				return nil, err
			}
		case length == undefinedLength && (vr == "SQ" || vr == "UN" || p.implicit):
			el.Undefined = true
			el.VR = "SQ"
			if err := p.sequence(&el, -1, depth, vr == "UN"); err != nil {
				return nil, fmt.Errorf("sequence %s: %w", tag, err)
			}
		case length == undefinedLength:
			return nil, p.errf(ErrMalformed, "element %s (%s) has undefined length", tag, vr)
		default:
			if int64(length) > int64(end-p.pos) {
				p.pos = start
				return nil, p.errf(ErrTruncated, "element %s declares %d bytes but %d remain", tag, length, end-start)
			}
			if vr == "SQ" {
				if err := p.sequence(&el, p.pos+int(length), depth, false); err != nil {
					return nil, fmt.Errorf("sequence %s: %w", tag, err)
				}
				break
			}
			el.Value = p.buf[p.pos : p.pos+int(length)]
			p.pos += int(length)
			if (vr == "UN" || (p.implicit && vr == "")) && looksLikeSequence(el.Value, p.bo) {
				// Private or unknown sequences: try to read them as items so that the
				// de-identifier can walk them; keep the bytes if that fails.
				sub := &parser{buf: el.Value, bo: p.bo, big: p.big, implicit: p.implicit || vr == "UN", lim: p.lim, count: p.count}
				if vr == "UN" {
					sub.bo, sub.big = binary.LittleEndian, false
				}
				tmp := Element{Tag: tag}
				if err := sub.sequence(&tmp, len(el.Value), depth, false); err == nil {
					el.Items, el.Value, el.VR = tmp.Items, nil, "SQ"
					p.count = sub.count
				}
			}
		}
		ds.Elements = append(ds.Elements, el)
	}
	if inItem && end != len(p.buf) && p.pos > end {
		return nil, p.errf(ErrMalformed, "item overruns its length")
	}
	return ds, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func looksLikeSequence(v []byte, bo binary.ByteOrder) bool {
	if len(v) < 8 {
		return false
	}
	g, e := bo.Uint16(v), bo.Uint16(v[2:])
	if NewTag(g, e) == tagItem {
		return true
	}
	return binary.LittleEndian.Uint32(v) == 0xE000FFFE
}

// sequence reads items up to end, or to a sequence delimiter when end < 0.
// An undefined-length UN sequence is implicit VR little endian by definition (PS3.5 6.2.2).
func (p *parser) sequence(el *Element, end int, depth int, unImplicit bool) error {
	saveImp, saveBO, saveBig := p.implicit, p.bo, p.big
	if unImplicit {
		p.implicit, p.bo, p.big = true, binary.LittleEndian, false
	}
	defer func() { p.implicit, p.bo, p.big = saveImp, saveBO, saveBig }()
	limit := end
	if end < 0 {
		limit = len(p.buf)
	}
	for p.pos < limit {
		tag, _, length, err := p.header()
		if err != nil {
			return err
		}
		switch tag {
		case tagSeqDelim:
			if end < 0 {
				return nil
			}
			continue
		case tagItem:
		default:
			return p.errf(ErrMalformed, "expected an item in sequence, found %s", tag)
		}
		itemEnd := limit
		if length != undefinedLength {
			if int64(length) > int64(limit-p.pos) {
				return p.errf(ErrTruncated, "item declares %d bytes but %d remain", length, limit-p.pos)
			}
			itemEnd = p.pos + int(length)
		}
		item, err := p.dataset(itemEnd, depth+1, length == undefinedLength)
		if err != nil {
			return err
		}
		el.Items = append(el.Items, item)
	}
	if end < 0 {
		return p.errf(ErrTruncated, "sequence has no delimiter before end of file")
	}
	return nil
}

// fragments reads encapsulated pixel data items until the sequence delimiter.
func (p *parser) fragments(el *Element) error {
	for {
		tag, _, length, err := p.header()
		if err != nil {
			return fmt.Errorf("encapsulated pixel data: %w", err)
		}
		if tag == tagSeqDelim {
			return nil
		}
		if tag != tagItem {
			return p.errf(ErrMalformed, "encapsulated pixel data holds %s, not an item", tag)
		}
		if length == undefinedLength || int64(length) > int64(len(p.buf)-p.pos) {
			return p.errf(ErrTruncated, "pixel data fragment declares %d bytes but %d remain", length, len(p.buf)-p.pos)
		}
		el.Fragments = append(el.Fragments, p.buf[p.pos:p.pos+int(length)])
		p.pos += int(length)
	}
}

// File is a parsed DICOM file: its meta group and its data set.
type File struct {
	Meta           *Dataset // nil when the file has no Part 10 header
	Data           *Dataset
	TransferSyntax string
	// Preamble is true when the 128-byte preamble and "DICM" were present.
	Preamble bool

	// Set when parsed by ReadHeader: where the pixel data value starts in the file.
	headerOnly  bool
	pixelOffset int64
	pixelLength int64
}

// Parse reads the element structure of a whole file held in memory. The returned
// values alias buf (except for deflated files, which are inflated into a new buffer).
func Parse(buf []byte, lim Limits) (f *File, err error) {
	return parse(buf, lim, false)
}

func parse(buf []byte, lim Limits, headerOnly bool) (f *File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("%w: reader fault: %v", ErrMalformed, r)
		}
	}()
	if lim.MaxDepth == 0 {
		lim = DefaultLimits
	}
	f = &File{}
	pos := 0
	if len(buf) >= 132 && string(buf[128:132]) == "DICM" {
		f.Preamble = true
		pos = 132
	} else if len(buf) >= 4 && string(buf[:4]) == "DICM" {
		pos = 4
	}
	// The meta group is always explicit VR little endian.
	if len(buf)-pos >= 6 && binary.LittleEndian.Uint16(buf[pos:]) == 0x0002 {
		mp := &parser{buf: buf, pos: pos, bo: binary.LittleEndian, lim: lim}
		meta := &Dataset{}
		for mp.pos+2 <= len(buf) && binary.LittleEndian.Uint16(buf[mp.pos:]) == 0x0002 {
			end := mp.pos
			// Read one element at a time so reading stops exactly at the data set.
			sub, err := mp.oneElement(len(buf))
			if err != nil {
				return nil, fmt.Errorf("file meta information: %w", err)
			}
			_ = end
			meta.Elements = append(meta.Elements, sub)
		}
		f.Meta = meta
		f.TransferSyntax = meta.String(tagTransferSyntax)
		if f.TransferSyntax == "" {
			return nil, fmt.Errorf("%w: file meta information has no transfer syntax uid (0002,0010)", ErrMalformed)
		}
		pos = mp.pos
	} else if f.Preamble {
		return nil, fmt.Errorf("%w: file has a dicm prefix but no file meta information group", ErrMalformed)
	}
	if f.TransferSyntax == "" {
		ts, ok := guessSyntax(buf[pos:])
		if !ok {
			return nil, fmt.Errorf("%w: no dicm prefix and the bytes do not start with a dicom element", ErrNotDICOM)
		}
		f.TransferSyntax = ts
	}
	data := buf[pos:]
	p := &parser{lim: lim}
	switch f.TransferSyntax {
	case TSImplicitLE:
		p.implicit, p.bo = true, binary.LittleEndian
	case TSExplicitBE:
		p.big, p.bo = true, binary.BigEndian
	case TSDeflatedLE:
		p.bo = binary.LittleEndian
		inflated, err := inflate(data, lim.MaxFileBytes)
		if err != nil {
			return nil, err
		}
		data = inflated
	default:
		p.bo = binary.LittleEndian
		// Some writers declare explicit VR but write implicit VR (pydicom reads these too):
		// a first element whose VR bytes are no VR is taken as implicit.
		if len(data) >= 8 && !explicitVRs[string(data[4:6])] {
			p.implicit = true
		}
	}
	p.buf = data
	p.headerOnly = headerOnly && f.TransferSyntax != TSDeflatedLE
	ds, err := p.dataset(len(data), 0, false)
	if err != nil {
		return nil, err
	}
	f.Data = ds
	if p.stopped {
		f.pixelOffset, f.pixelLength, f.headerOnly = int64(pos+p.pixelOffset), int64(p.pixelLength), true
	}
	return f, nil
}

func (p *parser) oneElement(end int) (Element, error) {
	tag, vr, length, err := p.header()
	if err != nil {
		return Element{}, err
	}
	if length == undefinedLength || int64(length) > int64(end-p.pos) {
		return Element{}, p.errf(ErrTruncated, "element %s declares %d bytes but %d remain", tag, length, end-p.pos)
	}
	el := Element{Tag: tag, VR: vr, Value: p.buf[p.pos : p.pos+int(length)]}
	p.pos += int(length)
	return el, nil
}

func inflate(data []byte, max int64) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(data))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: deflated data set: %v", ErrMalformed, err)
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("%w: deflated data set inflates past %d bytes", ErrTooLarge, max)
	}
	return out, nil
}

// guessSyntax recognises a data set written without the Part 10 header, as dcmtk does:
// the first tag must be a plausible low group in one byte order, and a valid VR
// after it means explicit VR.
func guessSyntax(b []byte) (string, bool) {
	if len(b) < 8 {
		return "", false
	}
	le := binary.LittleEndian.Uint16(b)
	be := binary.BigEndian.Uint16(b)
	vr := b[4:6]
	switch {
	case le >= 0x0002 && le <= 0x0010 && le%2 == 0:
		if explicitVRs[string(vr)] {
			return TSExplicitLE, true
		}
		return TSImplicitLE, true
	case be >= 0x0002 && be <= 0x0010 && be%2 == 0:
		if explicitVRs[string(vr)] {
			return TSExplicitBE, true
		}
		return "", false
	}
	return "", false
}

func float32FromBits(b uint32) float32 { return math.Float32frombits(b) }
func float64FromBits(b uint64) float64 { return math.Float64frombits(b) }

// implicitVRs gives the VR of the tags this package interprets numerically or
// writes, for implicit VR data sets where the stream does not carry it.
var implicitVRs = map[Tag]string{
	tagSamplesPerPixel: "US", tagPlanarConfiguration: "US", tagRows: "US", tagColumns: "US",
	tagBitsAllocated: "US", tagBitsStored: "US", tagHighBit: "US", tagPixelRepresentation: "US",
	tagRedDescriptor: "US", tagGreenDescriptor: "US", tagBlueDescriptor: "US",
	tagRedData: "OW", tagGreenData: "OW", tagBlueData: "OW", tagPixelData: "OW",
	tagSegRedData: "OW", tagSegGreenData: "OW", tagSegBlueData: "OW",
	tagFloatPixelData: "OF", tagDoubleFloatPixels: "OD",
	tagMetaGroupLength: "UL", tagNumberOfFrames: "IS", tagWindowCenter: "DS", tagWindowWidth: "DS",
	tagRescaleIntercept: "DS", tagRescaleSlope: "DS",
}

func implicitVR(t Tag) string {
	if vr, ok := implicitVRs[t]; ok {
		return vr
	}
	if t.Element() == 0x0000 {
		return "UL" // group length
	}
	if vr, ok := deidVR[t]; ok {
		return vr
	}
	return ""
}
