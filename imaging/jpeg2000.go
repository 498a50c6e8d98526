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
// StoredFrame's layout. Signedness is reconciled with Pixel Representation the
// way pydicom does (the codestream is trusted): unsigned samples in a signed image
// are read as two's complement of the codestream's precision, and signed samples
// in an unsigned image are offset by half the range. The loops are written per
// sample size: this runs once per decoded sample.
func (im *Image) j2kFrame(img *jpeg2000.Image) []byte {
	bps := im.BytesPerSample()
	spp := im.SamplesPerPixel
	px := im.Rows * im.Columns
	out := make([]byte, px*spp*bps)
	for c, comp := range img.Components {
		p := uint(comp.Precision)
		var shl, shr uint // two's complement of the codestream's precision
		var add int32
		switch signed := im.PixelRepresentation == 1; {
		case !comp.Signed && signed:
			shl, shr = 32-p, 32-p
		case comp.Signed && !signed:
			add = 1 << (p - 1)
		}
		samples := comp.Samples[:px]
		switch bps {
		case 1:
			for k, v := range samples {
				out[k*spp+c] = byte(v<<shl>>shr + add)
			}
		case 2:
			for k, v := range samples {
				binary.LittleEndian.PutUint16(out[2*(k*spp+c):], uint16(v<<shl>>shr+add))
			}
		default:
			for k, v := range samples {
				binary.LittleEndian.PutUint32(out[4*(k*spp+c):], uint32(v<<shl>>shr+add))
			}
		}
	}
	return out
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
