package dimse

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// element is one data element of a command set or a query identifier.
// Both travel here in implicit VR little endian: command sets always do
// (PS3.7 section 6.3.1), and we propose only that syntax for queries.
type element struct {
	tag   uint32
	value []byte
}

const (
	tagItem      = 0xFFFEE000
	tagItemDelim = 0xFFFEE00D
	tagSeqDelim  = 0xFFFEE0DD
	undefinedLen = 0xFFFFFFFF
	// maxNesting bounds sequence depth in the identifiers we skip.
	maxNesting = 16
)

// elements is a flat data set: the top-level elements, sequences skipped.
type elements map[uint32][]byte

func (e elements) str(tag uint32) string {
	return strings.TrimRight(strings.TrimLeft(string(e[tag]), " "), " \x00")
}

func (e elements) u16(tag uint32) (uint16, bool) {
	v, ok := e[tag]
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

// encodeElements writes elements in implicit VR little endian, sorted by
// tag, padding odd values (UIDs with NUL, text with a space).
func encodeElements(els []element) []byte {
	sort.Slice(els, func(i, j int) bool { return els[i].tag < els[j].tag })
	var b []byte
	for _, el := range els {
		v := el.value
		if len(v)%2 == 1 {
			pad := byte(' ')
			if uidTags[el.tag] {
				pad = 0
			}
			v = append(append([]byte{}, v...), pad)
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(el.tag>>16))
		b = binary.LittleEndian.AppendUint16(b, uint16(el.tag))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// uidTags are the UI elements we write, padded with NUL not space.
var uidTags = map[uint32]bool{
	tagAffectedSOPClass: true, tagRequestedSOPClass: true, tagAffectedSOPInstance: true,
	tagStudyUID: true, tagSeriesUID: true, tagSOPInstanceUID: true, tagSOPClassUID: true,
}

func u16Value(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

// decodeElements parses an implicit VR little endian data set, keeping
// top-level elements and skipping sequences (bounded in depth). A
// duplicate tag, a length past the end or a stray delimiter is an error.
func decodeElements(b []byte) (elements, error) {
	out := elements{}
	for len(b) > 0 {
		tag, n, hdr, err := elementHeader(b)
		if err != nil {
			return nil, err
		}
		if n == undefinedLen {
			rest, err := skipSequence(b[hdr:], 0)
			if err != nil {
				return nil, fmt.Errorf("element (%04X,%04X): %w", tag>>16, tag&0xFFFF, err)
			}
			b = rest
			continue
		}
		if tag>>16 == 0xFFFE {
			return nil, fmt.Errorf("%w: delimiter (%04X,%04X) outside a sequence", ErrProtocol, tag>>16, tag&0xFFFF)
		}
		if _, dup := out[tag]; dup {
			return nil, fmt.Errorf("%w: element (%04X,%04X) appears twice", ErrProtocol, tag>>16, tag&0xFFFF)
		}
		out[tag] = b[hdr : hdr+int(n)]
		b = b[hdr+int(n):]
	}
	return out, nil
}

func elementHeader(b []byte) (tag, n uint32, hdr int, err error) {
	if len(b) < 8 {
		return 0, 0, 0, fmt.Errorf("%w: element header cut short (%d bytes left)", ErrProtocol, len(b))
	}
	tag = uint32(binary.LittleEndian.Uint16(b))<<16 | uint32(binary.LittleEndian.Uint16(b[2:]))
	n = binary.LittleEndian.Uint32(b[4:])
	if n != undefinedLen && uint64(n) > uint64(len(b)-8) {
		return 0, 0, 0, fmt.Errorf("%w: element (%04X,%04X) claims %d bytes, %d remain", ErrProtocol, tag>>16, tag&0xFFFF, n, len(b)-8)
	}
	return tag, n, 8, nil
}

// skipSequence skips the items of an undefined-length sequence up to and
// including its delimiter and returns what follows.
func skipSequence(b []byte, depth int) ([]byte, error) {
	if depth >= maxNesting {
		return nil, fmt.Errorf("%w: sequences nested deeper than %d", ErrProtocol, maxNesting)
	}
	for {
		tag, n, hdr, err := elementHeader(b)
		if err != nil {
			return nil, err
		}
		b = b[hdr:]
		switch {
		case tag == tagSeqDelim:
			return b, nil
		case tag != tagItem:
			return nil, fmt.Errorf("%w: (%04X,%04X) inside a sequence where an item was expected", ErrProtocol, tag>>16, tag&0xFFFF)
		case n != undefinedLen:
			b = b[n:]
		default:
			if b, err = skipItem(b, depth+1); err != nil {
				return nil, err
			}
		}
	}
}

// skipItem skips the elements of an undefined-length item and its delimiter.
func skipItem(b []byte, depth int) ([]byte, error) {
	for {
		tag, n, hdr, err := elementHeader(b)
		if err != nil {
			return nil, err
		}
		b = b[hdr:]
		switch {
		case tag == tagItemDelim:
			return b, nil
		case n == undefinedLen:
			if b, err = skipSequence(b, depth); err != nil {
				return nil, err
			}
		default:
			b = b[n:]
		}
	}
}
