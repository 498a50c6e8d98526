package imaging

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/concord-fl/concord/imaging/jpeg2000"
)

// High-Throughput JPEG 2000 (Part 15) transfer syntaxes: the same decoder reads them.
const (
	TSHTJ2KLossless     = "1.2.840.10008.1.2.4.201"
	TSHTJ2KLosslessRPCL = "1.2.840.10008.1.2.4.202"
	TSHTJ2K             = "1.2.840.10008.1.2.4.203"
)

// isJ2K: the transfer syntax holds JPEG 2000 codestreams, Part 1 or HTJ2K.
func isJ2K(ts string) bool {
	switch ts {
	case TSJ2KLossless, TSJ2K, TSHTJ2KLossless, TSHTJ2KLosslessRPCL, TSHTJ2K:
		return true
	}
	return false
}

// decodeJ2K decodes one JPEG 2000 frame (transfer syntaxes .90 and .91, and HTJ2K's .201-.203) into
// StoredFrame's layout. The codestream's own colour transform (RCT or ICT) is undone
// by the decoder, so YBR_RCT and YBR_ICT frames come out as RGB, as with pydicom.
func (im *Image) decodeJ2K(src []byte) ([]byte, error) {
	n := int64(im.Rows) * int64(im.Columns) * int64(im.SamplesPerPixel)
	if err := im.checkJ2KHeader(src); err != nil {
		return nil, err
	}
	img, err := jpeg2000.Decode(src, jpeg2000.Options{MaxSamples: n})
	if err != nil {
		return nil, fmt.Errorf("jpeg 2000: %w", j2kCategory(err))
	}
	return im.j2kFrame(img), nil
}

// checkJ2KHeader compares a frame's SIZ with the image's attributes before decoding.
func (im *Image) checkJ2KHeader(src []byte) error {
	img, err := jpeg2000.DecodeConfig(src)
	if err != nil {
		return fmt.Errorf("jpeg 2000: %w", j2kCategory(err))
	}
	return im.j2kMatches(img)
}

func (im *Image) j2kMatches(img *jpeg2000.Image) error {
	if len(img.Components) != im.SamplesPerPixel {
		return fmt.Errorf("%w: jpeg 2000 frame has %d components, samples per pixel is %d", ErrMalformed, len(img.Components), im.SamplesPerPixel)
	}
	for c, comp := range img.Components {
		if comp.Width != im.Columns || comp.Height != im.Rows {
			return fmt.Errorf("%w: jpeg 2000 component %d is %dx%d, the image %dx%d", ErrMalformed, c, comp.Width, comp.Height, im.Columns, im.Rows)
		}
		if comp.Precision > im.BitsAllocated {
			return fmt.Errorf("%w: %d-bit jpeg 2000 samples in %d bits allocated", ErrMalformed, comp.Precision, im.BitsAllocated)
		}
	}
	return nil
}

// j2kFrame interleaves the decoded components, checked by checkJ2KHeader, into
// StoredFrame's layout.
func (im *Image) j2kFrame(img *jpeg2000.Image) []byte {
	bps := im.BytesPerSample()
	spp := im.SamplesPerPixel
	px := im.Rows * im.Columns
	out := make([]byte, px*spp*bps)
	for c, comp := range img.Components {
		adjust := j2kSignAdjust(comp, im.PixelRepresentation == 1)
		for k, v := range comp.Samples {
			v = adjust(v)
			at := k*spp + c
			switch bps {
			case 1:
				out[at] = byte(v)
			case 2:
				binary.LittleEndian.PutUint16(out[2*at:], uint16(v))
			default:
				binary.LittleEndian.PutUint32(out[4*at:], uint32(v))
			}
		}
	}
	return out
}

// j2kSignAdjust reconciles the codestream's signedness with Pixel Representation the
// way pydicom does (the codestream is trusted): unsigned samples in a signed image are
// read as two's complement of the codestream's precision, and signed samples in an
// unsigned image are offset by half the range.
func j2kSignAdjust(c jpeg2000.Component, signed bool) func(int32) int32 {
	p := uint(c.Precision)
	switch {
	case !c.Signed && signed:
		return func(v int32) int32 { return v << (32 - p) >> (32 - p) }
	case c.Signed && !signed:
		return func(v int32) int32 { return v + 1<<(p-1) }
	}
	return func(v int32) int32 { return v }
}

// j2kCategory adds the imaging error category to a decoder error.
func j2kCategory(err error) error {
	switch {
	case errors.Is(err, jpeg2000.ErrTruncated):
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	case errors.Is(err, jpeg2000.ErrUnsupported):
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	case errors.Is(err, jpeg2000.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}
