package dimse

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// byteConn is a connection whose peer has already sent b: it lets the
// fuzzer drive the message reader without a socket.
type byteConn struct {
	r *bytes.Reader
}

func (c byteConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c byteConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c byteConn) Close() error                     { return nil }
func (c byteConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c byteConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c byteConn) SetDeadline(time.Time) error      { return nil }
func (c byteConn) SetReadDeadline(time.Time) error  { return nil }
func (c byteConn) SetWriteDeadline(time.Time) error { return nil }

func fuzzSeeds() [][]byte {
	ctxs, roles := storageContexts(DefaultStorageClasses[:2], 3)
	rq := &assocParams{called: "PACS", calling: "US", contexts: ctxs, maxPDU: 16384, implClass: "1.2.3", implVersion: "X", roles: roles}
	ac := &assocParams{called: "PACS", calling: "US", contexts: []presCtx{{id: 1, syntaxes: []string{implicitLE}}}, maxPDU: 16384, implClass: "1.2.3"}
	cmd := encodeCommand([]element{
		{tagCommandField, u16Value(cFindRSP)}, {tagRespondingTo, u16Value(1)},
		{tagDataSetType, u16Value(dataSetPresent)}, {tagStatus, u16Value(0xFF00)},
	})
	ident := encodeElements([]element{{tagQueryLevel, []byte("SERIES")}, {tagStudyUID, []byte("1.2.3")}})
	seq := append([]byte{0x08, 0, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF},
		append(ident, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)...)
	return [][]byte{
		encodePDU(pduAssociateRQ, encodeAssociate(rq, true)),
		encodePDU(pduAssociateAC, encodeAssociate(ac, false)),
		append(encodePDU(pduData, pdv(1, 3, cmd)), encodePDU(pduData, pdv(1, 2, seq))...),
		append(encodePDU(pduData, pdv(1, 1, cmd[:10])), encodePDU(pduData, append(pdv(1, 3, cmd[10:]), pdv(1, 2, ident)...))...),
		encodePDU(pduAssociateRJ, []byte{0, 1, 1, 7}),
		encodePDU(pduAbort, []byte{0, 0, 2, 1}),
		encodePDU(pduReleaseRQ, make([]byte, 4)),
	}
}

// FuzzDecode feeds the PDU reader, the A-ASSOCIATE decoder, the message
// reassembler and the command and identifier decoders. Work per input is
// bounded by the input itself: no length field makes us allocate more than
// the limits (64 KiB PDUs here).
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { fuzzOne(b) })
}

func fuzzOne(b []byte) {
	{
		if p, err := readPDU(bytes.NewReader(b), 1<<16); err == nil {
			switch p.typ {
			case pduAssociateRQ:
				_, _ = decodeAssociate(p.body, true)
			case pduAssociateAC:
				_, _ = decodeAssociate(p.body, false)
			}
		}
		lim := &limits{maxPDU: 1 << 16, maxInstance: 1 << 16, timeout: time.Second}
		a := &assoc{conn: byteConn{bytes.NewReader(b)}, peer: "fuzz", lim: lim,
			ctxs: map[byte]presCtx{1: {id: 1, abstract: findStudyRoot, syntaxes: []string{implicitLE}}}}
		for i := 0; i < 4; i++ {
			m, err := a.receive(context.Background())
			if err != nil {
				break
			}
			if m.data != nil {
				_, _ = decodeElements(m.data)
			}
		}
		_, _ = decodeCommand(b)
		_, _ = decodeElements(b)
	}
}
