package imaging

import (
	"fmt"
	"math"
	"strings"
)

// Tags of the Modality LUT and VOI LUT modules.
const (
	tagModalityLUTSeq Tag = 0x00283000
	tagLUTDescriptor  Tag = 0x00283002
	tagLUTData        Tag = 0x00283006
	tagVOILUTSeq      Tag = 0x00283010
	tagVOILUTFunction Tag = 0x00281056
)

// LUT is a lookup table from a Modality LUT or VOI LUT Sequence (PS3.3 C.11.1, C.11.2).
type LUT struct {
	// First is the first input value mapped; inputs below map to the first entry,
	// inputs above to the last.
	First int
	// Bits is the bit depth of the entries.
	Bits int
	Data []uint16
}

// Lookup maps one input value.
func (l *LUT) Lookup(v float64) float64 {
	i := int(math.Floor(v)) - l.First
	if i < 0 {
		i = 0
	} else if i >= len(l.Data) {
		i = len(l.Data) - 1
	}
	return float64(l.Data[i])
}

// readLUT reads the first item of a LUT sequence; signedFirst says whether the
// descriptor's second value is SS (it follows the input's signedness).
func readLUT(ds *Dataset, seq Tag, signedFirst bool) (*LUT, error) {
	el := ds.Find(seq)
	if el == nil || len(el.Items) == 0 {
		return nil, nil
	}
	it := el.Items[0]
	n, ok1 := it.Uint(tagLUTDescriptor, 0)
	first, ok2 := it.Uint(tagLUTDescriptor, 1)
	bits, ok3 := it.Uint(tagLUTDescriptor, 2)
	data := it.Find(tagLUTData)
	if !ok1 || !ok2 || !ok3 || data == nil {
		return nil, fmt.Errorf("%w: %s lacks its lut descriptor or data", ErrMalformed, seq)
	}
	if n == 0 {
		n = 65536
	}
	if signedFirst {
		first = int(int16(uint16(first)))
	}
	if bits < 1 || bits > 16 {
		return nil, fmt.Errorf("%w: %s entries of %d bits", ErrMalformed, seq, bits)
	}
	l := &LUT{First: first, Bits: bits, Data: make([]uint16, n)}
	bo := it.order()
	switch {
	case len(data.Value) >= 2*n:
		for i := range l.Data {
			l.Data[i] = bo.Uint16(data.Value[2*i:])
		}
	case len(data.Value) >= n && bits <= 8:
		for i := range l.Data {
			l.Data[i] = uint16(data.Value[i])
		}
	default:
		return nil, fmt.Errorf("%w: %s holds %d bytes for %d entries", ErrTruncated, seq, len(data.Value), n)
	}
	return l, nil
}

// readLUTs fills the image's Modality and VOI LUTs and VOI LUT Function.
func (im *Image) readLUTs(ds *Dataset) error {
	var err error
	if im.ModalityLUT, err = readLUT(ds, tagModalityLUTSeq, im.PixelRepresentation == 1); err != nil {
		return err
	}
	signedVOI := im.PixelRepresentation == 1
	if im.ModalityLUT != nil {
		signedVOI = false
	} else if im.RescaleIntercept < 0 {
		signedVOI = true
	}
	if im.VOILUT, err = readLUT(ds, tagVOILUTSeq, signedVOI); err != nil {
		return err
	}
	im.VOIFunction = strings.ToUpper(ds.String(tagVOILUTFunction))
	return nil
}

// voi maps modality values to [0,1] with the image's VOI: the VOI LUT Sequence if
// present, else the first window with its VOI LUT Function (LINEAR, LINEAR_EXACT,
// SIGMOID). It reports false when the image has neither.
func (im *Image) voi(v []float32) bool {
	switch {
	case im.VOILUT != nil:
		max := float64(uint32(1)<<uint(im.VOILUT.Bits) - 1)
		for k, x := range v {
			v[k] = float32(im.VOILUT.Lookup(float64(x)) / max)
		}
	case im.HasWindow:
		c, w := im.WindowCenter, im.WindowWidth
		switch im.VOIFunction {
		case "SIGMOID":
			for k, x := range v {
				v[k] = float32(1 / (1 + math.Exp(-4*(float64(x)-c)/w)))
			}
		case "LINEAR_EXACT":
			scaleClip(v, c-w/2, c+w/2)
		default:
			scaleClip(v, c-0.5-(w-1)/2, c-0.5+(w-1)/2)
		}
	default:
		return false
	}
	return true
}
