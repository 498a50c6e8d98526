package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 section 9.3).
const (
	pduAssociateRQ = 0x01
	pduAssociateAC = 0x02
	pduAssociateRJ = 0x03
	pduData        = 0x04
	pduReleaseRQ   = 0x05
	pduReleaseRP   = 0x06
	pduAbort       = 0x07
)

// Items of the A-ASSOCIATE PDUs.
const (
	itemAppContext   = 0x10
	itemPresCtxRQ    = 0x20
	itemPresCtxAC    = 0x21
	itemAbstract     = 0x30
	itemTransfer     = 0x40
	itemUserInfo     = 0x50
	subMaxLength     = 0x51
	subImplClass     = 0x52
	subRoleSelection = 0x54
	subImplVersion   = 0x55
)

const (
	appContextUID = "1.2.840.10008.3.1.1.1"
	// maxAssociatePDU bounds A-ASSOCIATE PDUs, which carry only UIDs and
	// a few fixed fields: 128 contexts of 12 syntaxes fit well within it.
	maxAssociatePDU = 256 << 10
	pduHeaderLen    = 6
	pdvHeaderLen    = 6
)

// ErrProtocol marks a peer that broke the DICOM upper layer protocol.
var ErrProtocol = errors.New("dicom protocol error")

// pdu is one protocol data unit: its type and its body after the header.
type pdu struct {
	typ  byte
	body []byte
}

// readPDU reads one PDU, refusing bodies over max bytes before allocating.
func readPDU(r io.Reader, max uint32) (pdu, error) {
	var h [pduHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return pdu{}, err
	}
	typ := h[0]
	n := binary.BigEndian.Uint32(h[2:])
	if typ < pduAssociateRQ || typ > pduAbort {
		return pdu{}, fmt.Errorf("%w: unknown PDU type 0x%02X", ErrProtocol, typ)
	}
	limit := max
	if typ != pduData {
		limit = maxAssociatePDU
	}
	if n > limit {
		return pdu{}, fmt.Errorf("%w: PDU of type 0x%02X is %d bytes, over the limit of %d", ErrProtocol, typ, n, limit)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return pdu{}, fmt.Errorf("PDU body (%d bytes) cut short: %w", n, err)
	}
	return pdu{typ: typ, body: body}, nil
}

func encodePDU(typ byte, body []byte) []byte {
	out := make([]byte, pduHeaderLen, pduHeaderLen+len(body))
	out[0] = typ
	binary.BigEndian.PutUint32(out[2:], uint32(len(body)))
	return append(out, body...)
}

// presCtx is a presentation context as proposed (several transfer
// syntaxes) or accepted (one, with result 0).
type presCtx struct {
	id       byte
	abstract string
	syntaxes []string
	result   byte
}

// roleSel is an SCP/SCU role selection sub-item.
type roleSel struct {
	uid      string
	scu, scp bool
}

// assocParams is the content of an A-ASSOCIATE-RQ or -AC.
type assocParams struct {
	called, calling string
	contexts        []presCtx
	maxPDU          uint32
	implClass       string
	implVersion     string
	roles           []roleSel
}

func putItem(b []byte, typ byte, v []byte) []byte {
	b = append(b, typ, 0, byte(len(v)>>8), byte(len(v)))
	return append(b, v...)
}

func aeField(s string) []byte {
	f := []byte(fmt.Sprintf("%-16s", s))
	return f[:16]
}

// encodeAssociate builds an A-ASSOCIATE-RQ (rq true) or -AC body.
func encodeAssociate(p *assocParams, rq bool) []byte {
	b := []byte{0, 1, 0, 0}
	b = append(b, aeField(p.called)...)
	b = append(b, aeField(p.calling)...)
	b = append(b, make([]byte, 32)...)
	b = putItem(b, itemAppContext, []byte(appContextUID))
	for _, c := range p.contexts {
		var v []byte
		if rq {
			v = []byte{c.id, 0, 0, 0}
			v = putItem(v, itemAbstract, []byte(c.abstract))
		} else {
			v = []byte{c.id, 0, c.result, 0}
		}
		for _, ts := range c.syntaxes {
			v = putItem(v, itemTransfer, []byte(ts))
		}
		if rq {
			b = putItem(b, itemPresCtxRQ, v)
		} else {
			b = putItem(b, itemPresCtxAC, v)
		}
	}
	var u []byte
	var ml [4]byte
	binary.BigEndian.PutUint32(ml[:], p.maxPDU)
	u = putItem(u, subMaxLength, ml[:])
	u = putItem(u, subImplClass, []byte(p.implClass))
	for _, r := range p.roles {
		v := []byte{byte(len(r.uid) >> 8), byte(len(r.uid))}
		v = append(v, r.uid...)
		v = append(v, boolByte(r.scu), boolByte(r.scp))
		u = putItem(u, subRoleSelection, v)
	}
	if p.implVersion != "" {
		u = putItem(u, subImplVersion, []byte(p.implVersion))
	}
	return putItem(b, itemUserInfo, u)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// items splits a sequence of items (1-byte type, reserved, 2-byte length).
func items(b []byte, f func(typ byte, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("%w: item header cut short (%d bytes left)", ErrProtocol, len(b))
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if 4+n > len(b) {
			return fmt.Errorf("%w: item 0x%02X claims %d bytes, %d remain", ErrProtocol, b[0], n, len(b)-4)
		}
		if err := f(b[0], b[4:4+n]); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

func uidString(v []byte) string { return strings.TrimRight(string(v), "\x00 ") }

// decodeAssociate parses an A-ASSOCIATE-RQ (rq true) or -AC body.
func decodeAssociate(body []byte, rq bool) (*assocParams, error) {
	if len(body) < 68 {
		return nil, fmt.Errorf("%w: A-ASSOCIATE body is %d bytes, under 68", ErrProtocol, len(body))
	}
	if body[1]&1 == 0 {
		return nil, fmt.Errorf("%w: protocol version 0x%04X is not supported", ErrProtocol, binary.BigEndian.Uint16(body))
	}
	p := &assocParams{
		called:  strings.TrimSpace(string(body[4:20])),
		calling: strings.TrimSpace(string(body[20:36])),
	}
	sawApp := false
	err := items(body[68:], func(typ byte, v []byte) error {
		switch typ {
		case itemAppContext:
			sawApp = true
			if uidString(v) != appContextUID {
				return fmt.Errorf("%w: application context %.64q is not DICOM's", ErrProtocol, uidString(v))
			}
		case itemPresCtxRQ, itemPresCtxAC:
			if (typ == itemPresCtxRQ) != rq || len(v) < 4 {
				return fmt.Errorf("%w: misplaced or short presentation context item", ErrProtocol)
			}
			c := presCtx{id: v[0], result: v[2]}
			if err := items(v[4:], func(t byte, s []byte) error {
				switch t {
				case itemAbstract:
					c.abstract = uidString(s)
				case itemTransfer:
					c.syntaxes = append(c.syntaxes, uidString(s))
				default:
					return fmt.Errorf("%w: unknown presentation context sub-item 0x%02X", ErrProtocol, t)
				}
				return nil
			}); err != nil {
				return err
			}
			if len(p.contexts) >= 128 {
				return fmt.Errorf("%w: more than 128 presentation contexts", ErrProtocol)
			}
			p.contexts = append(p.contexts, c)
		case itemUserInfo:
			return items(v, func(t byte, s []byte) error {
				switch t {
				case subMaxLength:
					if len(s) != 4 {
						return fmt.Errorf("%w: maximum length sub-item is %d bytes, not 4", ErrProtocol, len(s))
					}
					p.maxPDU = binary.BigEndian.Uint32(s)
				case subImplClass:
					p.implClass = uidString(s)
				case subImplVersion:
					p.implVersion = strings.TrimSpace(string(s))
				case subRoleSelection:
					if len(s) < 2 || int(binary.BigEndian.Uint16(s))+4 != len(s) {
						return fmt.Errorf("%w: malformed role selection sub-item", ErrProtocol)
					}
					n := int(binary.BigEndian.Uint16(s))
					p.roles = append(p.roles, roleSel{uid: uidString(s[2 : 2+n]), scu: s[2+n] == 1, scp: s[3+n] == 1})
				}
				// Other user information (asynchronous operations,
				// extended negotiation, identity) is ignored: we never
				// propose it, and an acceptor that sends it unasked
				// gains nothing from our answer.
				return nil
			})
		default:
			return fmt.Errorf("%w: unknown A-ASSOCIATE item 0x%02X", ErrProtocol, typ)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sawApp {
		return nil, fmt.Errorf("%w: no application context item", ErrProtocol)
	}
	return p, nil
}

// rejectReason words the (result, source, reason) of an A-ASSOCIATE-RJ.
func rejectReason(result, source, reason byte) string {
	var why string
	switch {
	case source == 1 && reason == 2:
		why = "application context name not supported"
	case source == 1 && reason == 3:
		why = "calling AE title not recognised"
	case source == 1 && reason == 7:
		why = "called AE title not recognised"
	case source == 1:
		why = "no reason given by the service user"
	case source == 2 && reason == 2:
		why = "protocol version not supported"
	case source == 2:
		why = "no reason given by the service provider (ACSE)"
	case source == 3 && reason == 1:
		why = "temporary congestion"
	case source == 3 && reason == 2:
		why = "local limit exceeded"
	default:
		why = fmt.Sprintf("source %d reason %d", source, reason)
	}
	if result == 2 {
		why += " (transient: retrying later may succeed)"
	}
	return why
}

// abortReason words the (source, reason) of an A-ABORT.
func abortReason(source, reason byte) string {
	if source == 0 {
		return "aborted by the peer application"
	}
	switch reason {
	case 1:
		return "peer did not recognise a PDU we sent"
	case 2:
		return "peer did not expect a PDU we sent"
	case 4:
		return "peer did not recognise a PDU parameter"
	case 5:
		return "peer did not expect a PDU parameter"
	case 6:
		return "peer found an invalid PDU parameter value"
	}
	return "aborted by the peer's DICOM service provider"
}
