package imaging

import (
	"encoding/binary"
	"fmt"
)

// nextSegment finds the JPEG marker segment at or after b[k]: it skips fill
// bytes and, when skipStandalone is set, markers that carry no segment (SOI,
// TEM, RSTn). It returns the marker, the segment's payload and the offset
// just past it. EOI, or the end of the data, is returned as marker 0xD9.
func nextSegment(b []byte, k int, skipStandalone bool) (m byte, payload []byte, end int, err error) {
	for k+4 <= len(b) {
		if b[k] != 0xFF {
			return 0, nil, 0, fmt.Errorf("%w: expected a marker at byte %d", ErrMalformed, k)
		}
		m = b[k+1]
		switch {
		case m == 0xFF:
			k++
			continue
		case m == 0xD9:
			return m, nil, k + 2, nil
		case skipStandalone && (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)):
			k += 2
			continue
		}
		seg := int(binary.BigEndian.Uint16(b[k+2:]))
		if seg < 2 || k+2+seg > len(b) {
			return 0, nil, 0, fmt.Errorf("%w: marker segment %02X cut off", ErrTruncated, m)
		}
		return m, b[k+4 : k+2+seg], k + 2 + seg, nil
	}
	return 0xD9, nil, len(b), nil
}

// afterScan returns where the next marker after a scan's entropy-coded
// data starts (from k on), passing over restart markers, which belong to
// the scan.
func afterScan(b []byte, k int) int {
	for k+1 < len(b) && !(b[k] == 0xFF && b[k+1] != 0 && !(b[k+1] >= 0xD0 && b[k+1] <= 0xD7)) {
		k++
	}
	return k
}
