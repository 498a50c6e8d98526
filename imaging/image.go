package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
)

// Image is one decoded-on-demand DICOM image: its header values and access to its frames.
type Image struct {
	Rows, Columns, Frames, SamplesPerPixel int
	BitsAllocated, BitsStored, HighBit     int
	// PixelRepresentation is 1 for two's complement samples.
	PixelRepresentation int
	PlanarConfiguration int

	Modality, PhotometricInterpretation, TransferSyntaxUID string
	// StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID are raw identifiers:
	// callers de-identify them before recording them anywhere.
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID string
	BurnedInAnnotation                                               bool

	RescaleSlope, RescaleIntercept float64
	// WindowCenter and WindowWidth are the first VOI window, valid when HasWindow.
	WindowCenter, WindowWidth float64
	HasWindow                 bool
	// ModalityLUT and VOILUT are the first items of the LUT sequences, or nil.
	// VOIFunction is the VOI LUT Function (LINEAR when empty).
	ModalityLUT, VOILUT *LUT
	VOIFunction         string

	// File is the parsed element structure.
	File *File

	pixel   *Element
	order   binary.ByteOrder
	frames  [][]byte // encapsulated: one compressed frame each
	palette *palette
	// floatTag is the Float or Double Float Pixel Data tag when samples are IEEE
	// floats, else 0.
	floatTag Tag
	// dec is the Decoder whose file buffer holds this image's bytes (nil when the
	// image owns them); gen is the decoder's file count when it was read.
	dec *Decoder
	gen uint64
}

// ReadFile reads and checks one file. It never panics; work is bounded by DefaultLimits.
// Errors never contain the path (folder and file names often carry patient names):
// the caller knows which file it asked for.
func ReadFile(path string) (*Image, error) {
	return ReadFileLimits(path, DefaultLimits)
}

// ReadFileLimits is ReadFile with explicit limits.
func ReadFileLimits(path string, lim Limits) (*Image, error) {
	d := Decoder{Limits: lim}
	im, err := d.ReadFile(path)
	if err != nil {
		return nil, err
	}
	im.dec = nil // the image owns the buffer: nothing reads into it again
	return im, nil
}

// ReadHeader reads a file's header without its pixel data: it reads a prefix of the
// file, stops at the pixel data element and checks the declared image size against the
// bytes the file holds. The result describes the image but cannot decode frames. Scans
// use it so that a first pass over a large archive reads kilobytes, not gigabytes, per file.
func ReadHeader(path string) (im *Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			im, err = nil, fmt.Errorf("read dicom header: %w: reader fault: %v", ErrMalformed, r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read dicom header: %w", noPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read dicom header: %w", err)
	}
	if st.Size() > DefaultLimits.MaxFileBytes {
		return nil, fmt.Errorf("read dicom header: %w: %d bytes, limit %d", ErrTooLarge, st.Size(), DefaultLimits.MaxFileBytes)
	}
	for n := int64(64 << 10); ; n *= 4 {
		n = min(n, st.Size())
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read dicom header: %w", err)
		}
		pf, err := parse(buf, DefaultLimits, true)
		if err != nil {
			if errors.Is(err, ErrTruncated) && n < st.Size() {
				continue // the header is longer than the prefix
			}
			return nil, fmt.Errorf("read dicom header: %w", err)
		}
		if !pf.headerOnly && n < st.Size() {
			continue // no pixel data met yet (or deflated): read more
		}
		im, err := fromFile(pf, DefaultLimits, st.Size())
		if err != nil {
			return nil, fmt.Errorf("read dicom header: %w", err)
		}
		return im, nil
	}
}

// Read parses a whole file held in memory. The image keeps references into buf.
func Read(buf []byte, lim Limits) (im *Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			im, err = nil, fmt.Errorf("%w: reader fault: %v", ErrMalformed, r)
		}
	}()
	if lim.MaxDepth == 0 {
		lim = DefaultLimits
	}
	f, err := Parse(buf, lim)
	if err != nil {
		return nil, err
	}
	return fromFile(f, lim, int64(len(buf)))
}

// fromFile builds an Image; size is the file's length, used by header-only reads.
func fromFile(f *File, lim Limits, size int64) (*Image, error) {
	ds := f.Data
	im := &Image{File: f, TransferSyntaxUID: f.TransferSyntax, order: ds.order()}
	im.Modality = ds.String(tagModality)
	im.PhotometricInterpretation = strings.ToUpper(ds.String(tagPhotometric))
	im.StudyInstanceUID = ds.String(tagStudyInstanceUID)
	im.SeriesInstanceUID = ds.String(tagSeriesInstanceUID)
	im.SOPInstanceUID = ds.String(tagSOPInstanceUID)
	im.SOPClassUID = ds.String(tagSOPClassUID)
	im.BurnedInAnnotation = strings.EqualFold(ds.String(tagBurnedIn), "YES")
	im.RescaleSlope, im.RescaleIntercept = 1, 0
	if v, ok := ds.Float(tagRescaleSlope); ok && v != 0 && !math.IsNaN(v) && !math.IsInf(v, 0) {
		im.RescaleSlope = v
	}
	if v, ok := ds.Float(tagRescaleIntercept); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
		im.RescaleIntercept = v
	}
	c, okc := ds.Float(tagWindowCenter)
	w, okw := ds.Float(tagWindowWidth)
	if okc && okw && w >= 1 && !math.IsNaN(c) && !math.IsInf(c, 0) && !math.IsInf(w, 0) {
		im.WindowCenter, im.WindowWidth, im.HasWindow = c, w, true
	}

	im.pixel = ds.Find(tagPixelData)
	if im.pixel == nil {
		// Parametric maps carry IEEE floats in Float or Double Float Pixel Data.
		for _, t := range []Tag{tagFloatPixelData, tagDoubleFloatPixels} {
			if el := ds.Find(t); el != nil {
				im.pixel, im.floatTag = el, t
				break
			}
		}
	}
	if im.pixel == nil {
		return nil, ErrNoPixelData
	}
	var ok bool
	need := func(t Tag, name string) (int, error) {
		v, found := ds.Uint(t, 0)
		if !found {
			return 0, fmt.Errorf("%w: image has pixel data but no %s %s", ErrMalformed, name, t)
		}
		return v, nil
	}
	var err error
	if im.Rows, err = need(tagRows, "rows"); err != nil {
		return nil, err
	}
	if im.Columns, err = need(tagColumns, "columns"); err != nil {
		return nil, err
	}
	if im.BitsAllocated, err = need(tagBitsAllocated, "bits allocated"); err != nil {
		return nil, err
	}
	if im.SamplesPerPixel, ok = ds.Uint(tagSamplesPerPixel, 0); !ok {
		im.SamplesPerPixel = 1
	}
	if im.BitsStored, ok = ds.Uint(tagBitsStored, 0); !ok {
		im.BitsStored = im.BitsAllocated
	}
	if im.HighBit, ok = ds.Uint(tagHighBit, 0); !ok {
		im.HighBit = im.BitsStored - 1
	}
	im.PixelRepresentation, _ = ds.Uint(tagPixelRepresentation, 0)
	if im.floatTag != 0 {
		if err := im.checkFloat(); err != nil {
			return nil, err
		}
	}
	im.PlanarConfiguration, _ = ds.Uint(tagPlanarConfiguration, 0)
	im.Frames = 1
	if n, ok := ds.Uint(tagNumberOfFrames, 0); ok && n > 0 {
		im.Frames = n
	} else if ds.Find(tagNumberOfFrames) != nil && strings.TrimSpace(ds.String(tagNumberOfFrames)) != "" && !ok {
		return nil, fmt.Errorf("%w: number of frames %q is not a number", ErrMalformed, ds.String(tagNumberOfFrames))
	}
	if im.PhotometricInterpretation == "" {
		if im.SamplesPerPixel == 1 {
			im.PhotometricInterpretation = "MONOCHROME2"
		} else {
			im.PhotometricInterpretation = "RGB"
		}
	}
	if err := im.check(lim); err != nil {
		return nil, err
	}
	if err := im.readLUTs(ds); err != nil {
		return nil, err
	}
	if im.PhotometricInterpretation == "PALETTE COLOR" {
		p, err := readPalette(ds)
		if err != nil {
			return nil, err
		}
		im.palette = p
	}
	if f.headerOnly {
		return im, im.checkHeaderOnly(size)
	}
	if err := im.splitFrames(); err != nil {
		return nil, err
	}
	return im, nil
}

// checkHeaderOnly is splitFrames's size check for an image whose pixel data was not read.
func (im *Image) checkHeaderOnly(size int64) error {
	f := im.File
	if im.pixel.Undefined {
		if !IsEncapsulated(im.TransferSyntaxUID) {
			return fmt.Errorf("%w: encapsulated pixel data in native transfer syntax %s", ErrMalformed, TransferSyntaxName(im.TransferSyntaxUID))
		}
		return nil
	}
	if IsEncapsulated(im.TransferSyntaxUID) {
		return fmt.Errorf("%w: transfer syntax %s needs encapsulated pixel data, found native", ErrMalformed, TransferSyntaxName(im.TransferSyntaxUID))
	}
	if f.pixelOffset+f.pixelLength > size {
		return fmt.Errorf("%w: pixel data declares %d bytes but %d remain", ErrTruncated, f.pixelLength, size-f.pixelOffset)
	}
	var need int64
	if im.BitsAllocated == 1 {
		need = (int64(im.Rows)*int64(im.Columns)*int64(im.Frames)*int64(im.SamplesPerPixel) + 7) / 8
	} else {
		need = int64(im.nativeFrameBytes()) * int64(im.Frames)
	}
	if f.pixelLength < need {
		return fmt.Errorf("%w: pixel data holds %d bytes, the header declares %d (%dx%d, %d frames, %d samples, %d bits)",
			ErrTruncated, f.pixelLength, need, im.Rows, im.Columns, im.Frames, im.SamplesPerPixel, im.BitsAllocated)
	}
	return nil
}

func (im *Image) check(lim Limits) error {
	switch {
	case im.Rows <= 0 || im.Columns <= 0:
		return fmt.Errorf("%w: image is %dx%d", ErrMalformed, im.Rows, im.Columns)
	case im.SamplesPerPixel != 1 && im.SamplesPerPixel != 3:
		return fmt.Errorf("%w: %d samples per pixel (only 1 and 3 are defined for images)", ErrUnsupported, im.SamplesPerPixel)
	case im.BitsAllocated != 1 && im.BitsAllocated != 8 && im.BitsAllocated != 16 && im.BitsAllocated != 32 && !(im.BitsAllocated == 64 && im.floatTag != 0):
		return fmt.Errorf("%w: bits allocated %d", ErrUnsupported, im.BitsAllocated)
	case im.BitsStored < 1 || im.BitsStored > im.BitsAllocated:
		return fmt.Errorf("%w: bits stored %d with bits allocated %d", ErrMalformed, im.BitsStored, im.BitsAllocated)
	case im.HighBit < im.BitsStored-1 || im.HighBit >= im.BitsAllocated:
		return fmt.Errorf("%w: high bit %d with bits stored %d, allocated %d", ErrMalformed, im.HighBit, im.BitsStored, im.BitsAllocated)
	case im.PixelRepresentation > 1:
		return fmt.Errorf("%w: pixel representation %d", ErrMalformed, im.PixelRepresentation)
	}
	if im.PhotometricInterpretation == "YBR_FULL_422" && im.Columns%2 == 1 {
		return fmt.Errorf("%w: YBR_FULL_422 image with an odd number of columns (%d)", ErrMalformed, im.Columns)
	}
	mono := strings.HasPrefix(im.PhotometricInterpretation, "MONOCHROME") || im.PhotometricInterpretation == "PALETTE COLOR"
	if mono != (im.SamplesPerPixel == 1) {
		return fmt.Errorf("%w: photometric interpretation %s with %d samples per pixel", ErrMalformed, im.PhotometricInterpretation, im.SamplesPerPixel)
	}
	switch im.PhotometricInterpretation {
	case "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420", "YBR_PARTIAL_422":
	default:
		return fmt.Errorf("%w: photometric interpretation %q", ErrUnsupported, im.PhotometricInterpretation)
	}
	n := int64(im.Rows) * int64(im.Columns) * int64(im.Frames) * int64(im.SamplesPerPixel)
	if n > lim.MaxPixels {
		return fmt.Errorf("%w: %dx%d, %d frames, %d samples is more than %d samples", ErrTooLarge, im.Rows, im.Columns, im.Frames, im.SamplesPerPixel, lim.MaxPixels)
	}
	return nil
}

// FrameBytes is the size of one decoded frame in stored form (before YBR 4:2:2 expansion).
func (im *Image) nativeFrameBytes() int {
	n := im.Rows * im.Columns * im.SamplesPerPixel
	if im.PhotometricInterpretation == "YBR_FULL_422" && im.SamplesPerPixel == 3 && im.pixel != nil && !im.pixel.Undefined {
		n = n / 3 * 2
	}
	if im.BitsAllocated == 1 {
		return n // bits; converted by the caller
	}
	return n * im.BitsAllocated / 8
}

// splitFrames checks that the pixel data holds what the header declares, before
// any allocation proportional to the declared size.
func (im *Image) splitFrames() error {
	px := im.pixel
	if !px.Undefined {
		if IsEncapsulated(im.TransferSyntaxUID) {
			return fmt.Errorf("%w: transfer syntax %s needs encapsulated pixel data, found native", ErrMalformed, TransferSyntaxName(im.TransferSyntaxUID))
		}
		var need int64
		if im.BitsAllocated == 1 {
			need = (int64(im.Rows)*int64(im.Columns)*int64(im.Frames)*int64(im.SamplesPerPixel) + 7) / 8
		} else {
			need = int64(im.nativeFrameBytes()) * int64(im.Frames)
		}
		if int64(len(px.Value)) < need {
			return fmt.Errorf("%w: pixel data holds %d bytes, the header declares %d (%dx%d, %d frames, %d samples, %d bits)",
				ErrTruncated, len(px.Value), need, im.Rows, im.Columns, im.Frames, im.SamplesPerPixel, im.BitsAllocated)
		}
		return nil
	}
	if !IsEncapsulated(im.TransferSyntaxUID) {
		return fmt.Errorf("%w: encapsulated pixel data in native transfer syntax %s", ErrMalformed, TransferSyntaxName(im.TransferSyntaxUID))
	}
	if len(px.Fragments) < 2 {
		return fmt.Errorf("%w: encapsulated pixel data has no fragments", ErrTruncated)
	}
	frags := px.Fragments[1:]
	switch {
	case im.Frames == 1:
		im.frames = [][]byte{joinFragments(frags)}
	case len(frags) == im.Frames:
		im.frames = frags
	case len(px.Fragments[0]) >= 4*im.Frames:
		// Basic offset table: byte offsets of each frame's first fragment item.
		bot := px.Fragments[0]
		starts := make([]int, 0, len(frags))
		off := 0
		for _, fr := range frags {
			starts = append(starts, off)
			off += 8 + len(fr)
		}
		idx := func(o int) int {
			for i, s := range starts {
				if s == o {
					return i
				}
			}
			return -1
		}
		for k := 0; k < im.Frames; k++ {
			a := idx(int(binary.LittleEndian.Uint32(bot[4*k:])))
			b := len(frags)
			if k+1 < im.Frames {
				b = idx(int(binary.LittleEndian.Uint32(bot[4*k+4:])))
			}
			if a < 0 || b < 0 || b < a {
				return fmt.Errorf("%w: basic offset table does not match the fragments", ErrMalformed)
			}
			im.frames = append(im.frames, joinFragments(frags[a:b]))
		}
	default:
		// JPEG family: each frame starts with an SOI marker.
		var cur [][]byte
		for _, fr := range frags {
			if len(fr) >= 2 && fr[0] == 0xFF && fr[1] == 0xD8 && len(cur) > 0 {
				im.frames = append(im.frames, joinFragments(cur))
				cur = nil
			}
			cur = append(cur, fr)
		}
		if len(cur) > 0 {
			im.frames = append(im.frames, joinFragments(cur))
		}
		if len(im.frames) != im.Frames {
			return fmt.Errorf("%w: %d frames declared, %d found in %d fragments", ErrMalformed, im.Frames, len(im.frames), len(frags))
		}
	}
	if len(im.frames) < im.Frames {
		return fmt.Errorf("%w: %d frames declared, %d encapsulated", ErrTruncated, im.Frames, len(im.frames))
	}
	return nil
}

func joinFragments(fr [][]byte) []byte {
	if len(fr) == 1 {
		return fr[0]
	}
	return bytes.Join(fr, nil)
}

// IsEncapsulated says whether a transfer syntax carries compressed (encapsulated) pixel data.
func IsEncapsulated(ts string) bool {
	switch ts {
	case TSImplicitLE, TSExplicitLE, TSExplicitBE, TSDeflatedLE:
		return false
	}
	return strings.HasPrefix(ts, "1.2.840.10008.1.2.")
}

// Dtype is the numpy dtype string of StoredFrame's samples ("|u1", "<i2", "<f4", ...).
func (im *Image) Dtype() string {
	if im.floatTag != 0 {
		return "<f" + strconv.Itoa(im.BitsAllocated/8)
	}
	kind := "u"
	if im.PixelRepresentation == 1 && im.BitsAllocated > 1 {
		kind = "i"
	}
	switch im.BitsAllocated {
	case 1, 8:
		return "|" + kind + "1"
	case 16:
		return "<" + kind + "2"
	}
	return "<" + kind + "4"
}

// BytesPerSample of StoredFrame's output.
func (im *Image) BytesPerSample() int {
	if im.BitsAllocated <= 8 {
		return 1
	}
	return im.BitsAllocated / 8
}

// StoredFrame returns frame i as stored sample values in little-endian order, samples
// interleaved (rows x columns x samples): the same array pydicom's pixel_array gives.
// YBR_FULL_422 is expanded to full resolution; colour spaces are not converted.
func (im *Image) StoredFrame(i int) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: decoder fault in frame %d: %v", ErrMalformed, i, r)
		}
	}()
	if i < 0 || i >= im.Frames {
		return nil, fmt.Errorf("frame %d out of range [0,%d)", i, im.Frames)
	}
	if im.File.headerOnly {
		return nil, fmt.Errorf("image was read with ReadHeader; use ReadFile to decode its pixels")
	}
	if err := im.stale(); err != nil {
		return nil, err
	}
	if !im.pixel.Undefined {
		return im.nativeFrame(i)
	}
	return im.decodeFrame(i)
}

func (im *Image) nativeFrame(i int) ([]byte, error) {
	px := im.pixel.Value
	bps := im.BytesPerSample()
	if im.BitsAllocated == 1 {
		n := im.Rows * im.Columns * im.SamplesPerPixel
		out := make([]byte, n)
		base := i * n
		for k := 0; k < n; k++ {
			bit := base + k
			out[k] = (px[bit>>3] >> (bit & 7)) & 1
		}
		return out, nil
	}
	fb := im.nativeFrameBytes()
	src := px[i*fb : (i+1)*fb]
	if im.PhotometricInterpretation == "YBR_FULL_422" && im.SamplesPerPixel == 3 {
		return expand422(src, bps, im.order), nil
	}
	out := make([]byte, fb)
	copy(out, src)
	if bps > 1 && im.order == binary.BigEndian {
		swapBytes(out, bps)
	}
	if im.SamplesPerPixel == 3 && im.PlanarConfiguration == 1 {
		out = interleave(out, im.Rows*im.Columns, bps)
	}
	return out, nil
}

func swapBytes(b []byte, width int) {
	switch width {
	case 2:
		for k := 0; k+1 < len(b); k += 2 {
			b[k], b[k+1] = b[k+1], b[k]
		}
	case 4:
		for k := 0; k+3 < len(b); k += 4 {
			b[k], b[k+1], b[k+2], b[k+3] = b[k+3], b[k+2], b[k+1], b[k]
		}
	case 8:
		for k := 0; k+7 < len(b); k += 8 {
			for j := 0; j < 4; j++ {
				b[k+j], b[k+7-j] = b[k+7-j], b[k+j]
			}
		}
	}
}

// interleave turns planes RRR..GGG..BBB.. into RGBRGB...
func interleave(planar []byte, pixels, bps int) []byte {
	out := make([]byte, len(planar))
	for s := 0; s < 3; s++ {
		plane := planar[s*pixels*bps:]
		for p := 0; p < pixels; p++ {
			copy(out[(p*3+s)*bps:(p*3+s+1)*bps], plane[p*bps:(p+1)*bps])
		}
	}
	return out
}

// expand422 resamples Y1 Y2 Cb Cr to Y1 Cb Cr Y2 Cb Cr (PS3.3 C.7.6.3.1.2).
func expand422(src []byte, bps int, order binary.ByteOrder) []byte {
	groups := len(src) / (4 * bps)
	out := make([]byte, groups*6*bps)
	for g := 0; g < groups; g++ {
		s := src[g*4*bps:]
		d := out[g*6*bps:]
		y1, y2, cb, cr := s[0:bps], s[bps:2*bps], s[2*bps:3*bps], s[3*bps:4*bps]
		copy(d[0:], y1)
		copy(d[bps:], cb)
		copy(d[2*bps:], cr)
		copy(d[3*bps:], y2)
		copy(d[4*bps:], cb)
		copy(d[5*bps:], cr)
	}
	if bps > 1 && order == binary.BigEndian {
		swapBytes(out, bps)
	}
	return out
}

// sample reads stored sample k of a StoredFrame buffer as a number, applying
// Bits Stored, High Bit and Pixel Representation.
type sampler struct {
	bps    int
	shift  uint
	mask   uint32
	signed bool
	sbit   uint32
}

func (im *Image) sampler() sampler {
	s := sampler{bps: im.BytesPerSample(), signed: im.PixelRepresentation == 1}
	s.shift = uint(im.HighBit + 1 - im.BitsStored)
	if im.BitsStored >= 32 {
		s.mask = 0xFFFFFFFF
	} else {
		s.mask = 1<<uint(im.BitsStored) - 1
	}
	s.sbit = 1 << uint(im.BitsStored-1)
	return s
}

func (s sampler) at(b []byte, k int) float64 {
	var u uint32
	switch s.bps {
	case 1:
		u = uint32(b[k])
	case 2:
		u = uint32(binary.LittleEndian.Uint16(b[2*k:]))
	default:
		u = binary.LittleEndian.Uint32(b[4*k:])
	}
	u = (u >> s.shift) & s.mask
	if s.signed && u&s.sbit != 0 {
		return float64(int64(u) - int64(s.mask) - 1)
	}
	return float64(u)
}

// Frame returns frame i as float32 values, samples interleaved. Monochrome frames have the
// modality LUT applied (the Modality LUT Sequence if present, else rescale slope and
// intercept: Hounsfield units for CT); colour
// frames are RGB (YBR converted, palette looked up) on the stored scale.
func (im *Image) Frame(i int) (out []float32, err error) {
	return im.frameTo(nil, i)
}

// frameTo is Frame writing into dst's storage when it has room.
func (im *Image) frameTo(dst []float32, i int) (out []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: pixel conversion fault in frame %d: %v", ErrMalformed, i, r)
		}
	}()
	if err := im.stale(); err != nil {
		return nil, err
	}
	var raw []byte
	if im.directFrame() && !im.File.headerOnly {
		if i < 0 || i >= im.Frames {
			return nil, fmt.Errorf("frame %d out of range [0,%d)", i, im.Frames)
		}
		fb := im.nativeFrameBytes()
		raw = im.pixel.Value[i*fb : (i+1)*fb]
	} else {
		raw, err = im.StoredFrame(i)
	}
	if err != nil {
		return nil, err
	}
	return im.pixels(dst, raw), nil
}

// pixels converts a frame in StoredFrame's layout (im.Rows x im.Columns) as Frame
// does, into dst's storage when it has room. Every branch writes every value, so
// whatever dst held never shows through.
func (im *Image) pixels(dst []float32, raw []byte) []float32 {
	n := im.Rows * im.Columns
	if im.floatTag != 0 {
		return floatToFloat(resize(dst, n), raw, im.BytesPerSample(), im.RescaleSlope, im.RescaleIntercept)
	}
	s := im.sampler()
	if im.BitsAllocated == 1 {
		s = sampler{bps: 1, mask: 1}
	}
	switch {
	case im.palette != nil:
		return im.palette.apply(resize(dst, 3*n), raw, s)
	case im.SamplesPerPixel == 1 && im.ModalityLUT != nil:
		out := resize(dst, n)
		for k := range out {
			out[k] = float32(im.ModalityLUT.Lookup(s.at(raw, k)))
		}
		return out
	case im.SamplesPerPixel == 1:
		return monoToFloat(resize(dst, n), raw, s, im.RescaleSlope, im.RescaleIntercept)
	}
	out := resize(dst, 3*n)
	for k := range out {
		out[k] = float32(s.at(raw, k))
	}
	// YBR_RCT and YBR_ICT name JPEG 2000's own colour transforms, which its decoder undoes.
	if strings.HasPrefix(im.PhotometricInterpretation, "YBR") && im.PhotometricInterpretation != "YBR_RCT" && im.PhotometricInterpretation != "YBR_ICT" {
		ybrToRGB(out, im.PhotometricInterpretation, float32(int(1)<<uint(im.BitsStored-1)), float32(s.mask))
	}
	return out
}

// ybrToRGB converts in place (PS3.3 C.7.6.3.1.2).
func ybrToRGB(v []float32, pi string, mid, max float32) {
	partial := strings.HasPrefix(pi, "YBR_PARTIAL")
	scale := max / 255
	for k := 0; k+2 < len(v); k += 3 {
		y, cb, cr := v[k], v[k+1]-mid, v[k+2]-mid
		if partial {
			y = 1.1644 * (y - 16*scale)
			cb, cr = cb*1.1384, cr*1.1384 // 255/224
		}
		r := y + 1.402*cr
		g := y - 0.344136*cb - 0.714136*cr
		b := y + 1.772*cb
		v[k], v[k+1], v[k+2] = clamp32(r, 0, max), clamp32(g, 0, max), clamp32(b, 0, max)
	}
}

func clamp32(x, lo, hi float32) float32 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

// directFrame says whether stored frames can be read in place from the file's bytes.
func (im *Image) directFrame() bool {
	return !im.pixel.Undefined && im.BitsAllocated >= 8 && (im.BitsAllocated == 8 || im.order == binary.LittleEndian) &&
		(im.SamplesPerPixel == 1 || im.PlanarConfiguration == 0) && im.PhotometricInterpretation != "YBR_FULL_422"
}

// checkFloat checks the Floating Point Image Pixel module (PS3.3 C.7.6.24, C.7.6.25):
// one sample of 32 bits in Float Pixel Data, of 64 bits in Double Float Pixel Data.
func (im *Image) checkFloat() error {
	want := 32
	if im.floatTag == tagDoubleFloatPixels {
		want = 64
	}
	switch {
	case im.pixel.Undefined:
		return fmt.Errorf("%w: float pixel data %s with undefined length", ErrMalformed, im.floatTag)
	case im.BitsAllocated != want:
		return fmt.Errorf("%w: float pixel data %s with bits allocated %d, %d expected", ErrMalformed, im.floatTag, im.BitsAllocated, want)
	case im.SamplesPerPixel != 1:
		return fmt.Errorf("%w: float pixel data %s with %d samples per pixel", ErrMalformed, im.floatTag, im.SamplesPerPixel)
	}
	// Bits Stored, High Bit and Pixel Representation do not apply to floats.
	im.BitsStored, im.HighBit, im.PixelRepresentation = want, want-1, 0
	return nil
}

// resize is dst with length n when its storage has room, else a new slice.
func resize(dst []float32, n int) []float32 {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]float32, n)
}

// floatToFloat reads len(out) little-endian IEEE samples of bps bytes into out and
// applies the rescale.
func floatToFloat(out []float32, raw []byte, bps int, slope, icpt float64) []float32 {
	for k := range out {
		var v float64
		if bps == 8 {
			v = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*k:]))
		} else {
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:])))
		}
		out[k] = float32(v*slope + icpt)
	}
	return out
}

// monoToFloat converts len(out) samples into out, applying Bits Stored, sign and
// the modality LUT with a loop per layout: the hot path of every training run.
func monoToFloat(out []float32, raw []byte, s sampler, slope, icpt float64) []float32 {
	n := len(out)
	sl, ic := float32(slope), float32(icpt)
	exact := float64(sl) == slope && float64(ic) == icpt
	switch {
	case s.bps == 2 && s.shift == 0 && exact:
		var sbit uint16
		if s.signed {
			sbit = uint16(s.sbit)
		}
		le16ToFloat(out, raw[:2*n], uint16(s.mask), sbit, sl, ic)
	case s.bps == 1 && s.shift == 0 && exact && !s.signed:
		m := uint8(s.mask)
		var lut [256]float32
		for v := range lut {
			lut[v] = float32(uint8(v)&m)*sl + ic
		}
		for k := range out {
			out[k] = lut[raw[k]]
		}
	default:
		for k := range out {
			out[k] = float32(s.at(raw, k)*slope + icpt)
		}
	}
	return out
}

// noPath drops the file name from an *fs.PathError, keeping the operation and cause
// (errors.Is(err, fs.ErrNotExist) still holds).
func noPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
