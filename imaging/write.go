package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ImplementationClassUID identifies files this package writes (2.25 form, from a fixed UUID).
const ImplementationClassUID = "2.25.302043385236178236612937146021829355262"

// encoder writes elements in one transfer syntax.
type encoder struct {
	b        bytes.Buffer
	bo       binary.ByteOrder
	implicit bool
}

func (e *encoder) u16(v uint16) { var t [2]byte; e.bo.PutUint16(t[:], v); e.b.Write(t[:]) }
func (e *encoder) u32(v uint32) { var t [4]byte; e.bo.PutUint32(t[:], v); e.b.Write(t[:]) }

func (e *encoder) tag(t Tag) { e.u16(t.Group()); e.u16(t.Element()) }

func padValue(vr string, v []byte) []byte {
	if len(v)%2 == 0 {
		return v
	}
	pad := byte(' ')
	if vr == "UI" || vr == "OB" || vr == "UN" || vr == "" {
		pad = 0
	}
	out := make([]byte, len(v)+1)
	copy(out, v)
	out[len(v)] = pad
	return out
}

func (e *encoder) header(t Tag, vr string, length uint32) {
	e.tag(t)
	if e.implicit {
		e.u32(length)
		return
	}
	if vr == "" {
		vr = "UN"
	}
	e.b.WriteString(vr)
	if longVR(vr) {
		e.u16(0)
		e.u32(length)
		return
	}
	e.u16(uint16(length))
}

func (e *encoder) dataset(ds *Dataset) error {
	for i := range ds.Elements {
		if err := e.element(&ds.Elements[i]); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) element(el *Element) error {
	switch {
	case el.VR == "SQ" || el.Items != nil:
		e.header(el.Tag, "SQ", undefinedLength)
		for _, it := range el.Items {
			e.tag(tagItem)
			e.u32(undefinedLength)
			if err := e.dataset(it); err != nil {
				return err
			}
			e.tag(tagItemDelim)
			e.u32(0)
		}
		e.tag(tagSeqDelim)
		e.u32(0)
	case el.Fragments != nil:
		vr := el.VR
		if vr == "" || vr == "OW" {
			vr = "OB"
		}
		e.header(el.Tag, vr, undefinedLength)
		for _, f := range el.Fragments {
			f = padValue("OB", f)
			e.tag(tagItem)
			e.u32(uint32(len(f)))
			e.b.Write(f)
		}
		e.tag(tagSeqDelim)
		e.u32(0)
	default:
		v := padValue(el.VR, el.Value)
		vr := el.VR
		if !e.implicit && !longVR(vr) && vr != "" && len(v) > 0xFFFF {
			return fmt.Errorf("element %s (%s) is %d bytes, too long for its value representation", el.Tag, vr, len(v))
		}
		if !e.implicit && vr == "" {
			vr = "UN"
		}
		e.header(el.Tag, vr, uint32(len(v)))
		e.b.Write(v)
	}
	return nil
}

// encodeFile writes a Part 10 file: preamble, meta group (explicit VR little endian,
// group length recomputed), then the data set in the given transfer syntax.
func encodeFile(meta, data *Dataset, ts string) ([]byte, error) {
	var m encoder
	m.bo = binary.LittleEndian
	metaEls := make([]Element, 0, len(meta.Elements))
	for _, el := range meta.Elements {
		if el.Tag != tagMetaGroupLength && el.Tag.Group() == 0x0002 {
			metaEls = append(metaEls, el)
		}
	}
	sort.SliceStable(metaEls, func(i, j int) bool { return metaEls[i].Tag < metaEls[j].Tag })
	for i := range metaEls {
		if err := m.element(&metaEls[i]); err != nil {
			return nil, err
		}
	}
	d := encoder{bo: binary.LittleEndian}
	switch ts {
	case TSImplicitLE:
		d.implicit = true
	case TSExplicitBE:
		d.bo = binary.BigEndian
	case TSDeflatedLE:
		return nil, fmt.Errorf("writing deflated data sets is not supported")
	}
	if err := d.dataset(data); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	var g encoder
	g.bo = binary.LittleEndian
	gl := make([]byte, 4)
	binary.LittleEndian.PutUint32(gl, uint32(m.b.Len()))
	if err := g.element(&Element{Tag: tagMetaGroupLength, VR: "UL", Value: gl}); err != nil {
		return nil, err
	}
	out.Write(g.b.Bytes())
	out.Write(m.b.Bytes())
	out.Write(d.b.Bytes())
	return out.Bytes(), nil
}

// SyntheticFile describes a single-frame MONOCHROME2 image with the identifying
// attributes a real one carries. The simulator's generator and the de-identification
// tests fill the identifiers with known fake values.
type SyntheticFile struct {
	Pixels        []uint16
	Rows, Columns int
	// BitsStored defaults to 16; pixels must fit in it.
	BitsStored int
	Modality   string // default "OT"

	PatientName, PatientID, PatientBirthDate, PatientSex string
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID  string
	InstitutionName, AccessionNumber, StudyDate          string
	ReferringPhysicianName, StudyDescription             string
	// PatientAge (AS, e.g. "045Y"), Manufacturer and ManufacturerModelName
	// are written when set: the coarse attributes validation reports
	// subgroups by (see Image.Groups).
	PatientAge, Manufacturer, ManufacturerModelName string
	// PrivateText goes into a private element (0009,1010) under creator "CONCORD SYNTH".
	PrivateText string

	WindowCenter, WindowWidth      float64 // written when WindowWidth > 0
	RescaleSlope, RescaleIntercept float64 // written when RescaleSlope != 0
	BurnedInAnnotation             bool
	Monochrome1                    bool
}

const secondaryCaptureSOPClass = "1.2.840.10008.5.1.4.1.1.7"

func formatDS(v float64) string {
	s := strconv.FormatFloat(v, 'g', 10, 64)
	if len(s) > 16 {
		s = strconv.FormatFloat(v, 'g', 8, 64)
	}
	return s
}

// WriteFile writes f as a Part 10 explicit VR little endian file that pydicom and
// dcmtk read.
func WriteFile(path string, f SyntheticFile) error {
	b, err := EncodeSynthetic(f)
	if err != nil {
		return fmt.Errorf("write synthetic dicom: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write dicom: %w", noPath(err))
	}
	return nil
}

// EncodeSynthetic is WriteFile without the file.
func EncodeSynthetic(f SyntheticFile) ([]byte, error) {
	if f.Rows < 1 || f.Columns < 1 || f.Rows > 65535 || f.Columns > 65535 {
		return nil, fmt.Errorf("synthetic image must be 1..65535 square pixels, got %dx%d", f.Rows, f.Columns)
	}
	if len(f.Pixels) != f.Rows*f.Columns {
		return nil, fmt.Errorf("synthetic image has %d pixels, %dx%d needs %d", len(f.Pixels), f.Rows, f.Columns, f.Rows*f.Columns)
	}
	bits := f.BitsStored
	if bits == 0 {
		bits = 16
	}
	if bits < 1 || bits > 16 {
		return nil, fmt.Errorf("bits stored must be 1..16, got %d", bits)
	}
	for _, p := range f.Pixels {
		if int(p) >= 1<<uint(bits) {
			return nil, fmt.Errorf("pixel value %d does not fit in %d bits", p, bits)
		}
	}
	for _, u := range []string{f.StudyInstanceUID, f.SeriesInstanceUID, f.SOPInstanceUID} {
		if !ValidUID(u) {
			return nil, fmt.Errorf("invalid uid %q: digits and dots, at most 64 characters", u)
		}
	}
	mod := f.Modality
	if mod == "" {
		mod = "OT"
	}
	pi := "MONOCHROME2"
	if f.Monochrome1 {
		pi = "MONOCHROME1"
	}
	us := func(v int) []byte { b := make([]byte, 2); binary.LittleEndian.PutUint16(b, uint16(v)); return b }
	s := func(v string) []byte { return []byte(v) }
	burned := "NO"
	if f.BurnedInAnnotation {
		burned = "YES"
	}
	px := make([]byte, 2*len(f.Pixels))
	for i, p := range f.Pixels {
		binary.LittleEndian.PutUint16(px[2*i:], p)
	}
	els := []Element{
		{Tag: 0x00080016, VR: "UI", Value: s(secondaryCaptureSOPClass)},
		{Tag: tagSOPInstanceUID, VR: "UI", Value: s(f.SOPInstanceUID)},
		{Tag: 0x00080020, VR: "DA", Value: s(f.StudyDate)},
		{Tag: 0x00080050, VR: "SH", Value: s(f.AccessionNumber)},
		{Tag: tagModality, VR: "CS", Value: s(mod)},
		{Tag: 0x00080064, VR: "CS", Value: s("WSD")},
		{Tag: 0x00080080, VR: "LO", Value: s(f.InstitutionName)},
		{Tag: 0x00080090, VR: "PN", Value: s(f.ReferringPhysicianName)},
		{Tag: 0x00081030, VR: "LO", Value: s(f.StudyDescription)},
		{Tag: 0x00090010, VR: "LO", Value: s("CONCORD SYNTH")},
		{Tag: 0x00091010, VR: "LO", Value: s(f.PrivateText)},
		{Tag: 0x00100010, VR: "PN", Value: s(f.PatientName)},
		{Tag: 0x00100020, VR: "LO", Value: s(f.PatientID)},
		{Tag: 0x00100030, VR: "DA", Value: s(f.PatientBirthDate)},
		{Tag: 0x00100040, VR: "CS", Value: s(f.PatientSex)},
		{Tag: tagStudyInstanceUID, VR: "UI", Value: s(f.StudyInstanceUID)},
		{Tag: tagSeriesInstanceUID, VR: "UI", Value: s(f.SeriesInstanceUID)},
		{Tag: 0x00200010, VR: "SH", Value: s("1")},
		{Tag: 0x00200011, VR: "IS", Value: s("1")},
		{Tag: 0x00200013, VR: "IS", Value: s("1")},
		{Tag: tagSamplesPerPixel, VR: "US", Value: us(1)},
		{Tag: tagPhotometric, VR: "CS", Value: s(pi)},
		{Tag: tagRows, VR: "US", Value: us(f.Rows)},
		{Tag: tagColumns, VR: "US", Value: us(f.Columns)},
		{Tag: tagBitsAllocated, VR: "US", Value: us(16)},
		{Tag: tagBitsStored, VR: "US", Value: us(bits)},
		{Tag: tagHighBit, VR: "US", Value: us(bits - 1)},
		{Tag: tagPixelRepresentation, VR: "US", Value: us(0)},
		{Tag: tagBurnedIn, VR: "CS", Value: s(burned)},
	}
	if f.PrivateText == "" {
		els = slicesDeletePrivate(els)
	}
	for _, o := range []struct {
		tag      Tag
		vr, text string
	}{{tagManufacturer, "LO", f.Manufacturer}, {tagManufacturerModel, "LO", f.ManufacturerModelName}, {tagPatientAge, "AS", f.PatientAge}} {
		if o.text != "" {
			els = append(els, Element{Tag: o.tag, VR: o.vr, Value: s(o.text)})
		}
	}
	if f.WindowWidth > 0 {
		els = append(els, Element{Tag: tagWindowCenter, VR: "DS", Value: s(formatDS(f.WindowCenter))},
			Element{Tag: tagWindowWidth, VR: "DS", Value: s(formatDS(f.WindowWidth))})
	}
	if f.RescaleSlope != 0 {
		els = append(els, Element{Tag: tagRescaleIntercept, VR: "DS", Value: s(formatDS(f.RescaleIntercept))},
			Element{Tag: tagRescaleSlope, VR: "DS", Value: s(formatDS(f.RescaleSlope))},
			Element{Tag: 0x00281054, VR: "LO", Value: s("US")})
	}
	els = append(els, Element{Tag: tagPixelData, VR: "OW", Value: px})
	sort.SliceStable(els, func(i, j int) bool { return els[i].Tag < els[j].Tag })
	meta := &Dataset{Elements: []Element{
		{Tag: 0x00020001, VR: "OB", Value: []byte{0, 1}},
		{Tag: 0x00020002, VR: "UI", Value: s(secondaryCaptureSOPClass)},
		{Tag: tagMediaSOPInstance, VR: "UI", Value: s(f.SOPInstanceUID)},
		{Tag: tagTransferSyntax, VR: "UI", Value: s(TSExplicitLE)},
		{Tag: 0x00020012, VR: "UI", Value: s(ImplementationClassUID)},
		{Tag: 0x00020013, VR: "SH", Value: s("CONCORD1")},
	}}
	return encodeFile(meta, &Dataset{Elements: els}, TSExplicitLE)
}

func slicesDeletePrivate(els []Element) []Element {
	out := els[:0]
	for _, e := range els {
		if e.Tag.Group() != 0x0009 {
			out = append(out, e)
		}
	}
	return out
}

// ValidUID checks DICOM UID syntax (PS3.5 9.1): 1-64 characters, dot-separated
// numbers without leading zeros.
func ValidUID(u string) bool {
	if len(u) == 0 || len(u) > 64 {
		return false
	}
	for _, c := range strings.Split(u, ".") {
		if c == "" || (len(c) > 1 && c[0] == '0') {
			return false
		}
		for _, r := range c {
			if r < '0' || r > '9' {
				return false
			}
		}
	}
	return true
}
