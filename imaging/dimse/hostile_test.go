package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/imaging/pacs"
)

// hostilePeer listens once and, after reading the A-ASSOCIATE-RQ, plays
// script on the connection: a peer that breaks the protocol on purpose.
func hostilePeer(t *testing.T, script func(conn net.Conn, rq *assocParams)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		p, err := readPDU(conn, maxAssociatePDU)
		if err != nil {
			return
		}
		rq, err := decodeAssociate(p.body, true)
		if err != nil {
			return
		}
		script(conn, rq)
		// Keep the connection open until the client hangs up, so the
		// client's error comes from what the script sent.
		_, _ = io.Copy(io.Discard, conn)
	}()
	return ln.Addr().String()
}

// accept answers the request with every context accepted in its first syntax.
func accept(conn net.Conn, rq *assocParams, maxPDU uint32) {
	ac := &assocParams{called: rq.called, calling: rq.calling, maxPDU: maxPDU, implClass: "1.2.3"}
	for _, c := range rq.contexts {
		ac.contexts = append(ac.contexts, presCtx{id: c.id, syntaxes: c.syntaxes[:1]})
	}
	_, _ = conn.Write(encodePDU(pduAssociateAC, encodeAssociate(ac, false)))
}

func pdv(ctxID, ctrl byte, v []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(v)+2))
	return append(append(b, ctxID, ctrl), v...)
}

func TestHostilePeer(t *testing.T) {
	findPending := encodeCommand([]element{
		{tagCommandField, u16Value(cFindRSP)}, {tagRespondingTo, u16Value(1)},
		{tagDataSetType, u16Value(dataSetPresent)}, {tagStatus, u16Value(0xFF00)},
	})
	cases := []struct {
		name   string
		script func(net.Conn, *assocParams)
		want   string
	}{
		{"garbage", func(c net.Conn, _ *assocParams) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}, "unknown PDU type 0x48"},
		{"oversized associate answer", func(c net.Conn, _ *assocParams) {
			_, _ = c.Write([]byte{pduAssociateAC, 0, 0x10, 0, 0, 0})
		}, "PDU of type 0x02 is 268435456 bytes, over the limit of 262144"},
		{"oversized data PDU", func(c net.Conn, rq *assocParams) {
			accept(c, rq, 16384)
			_, _ = c.Write([]byte{pduData, 0, 0xFF, 0xFF, 0xFF, 0xF0})
		}, "PDU of type 0x04 is 4294967280 bytes, over the limit of 262144"},
		{"cut short", func(c net.Conn, _ *assocParams) {
			_, _ = c.Write([]byte{pduAssociateAC, 0, 0, 0, 0, 100, 0, 1})
			_ = c.(*net.TCPConn).CloseWrite()
		}, "PDU body (100 bytes) cut short"},
		{"rejected", func(c net.Conn, _ *assocParams) {
			_, _ = c.Write(encodePDU(pduAssociateRJ, []byte{0, 1, 1, 3}))
		}, "association rejected by PACS at 127.0.0.1:"},
		{"aborted", func(c net.Conn, rq *assocParams) {
			accept(c, rq, 16384)
			_, _ = c.Write(encodePDU(pduAbort, []byte{0, 0, 2, 6}))
		}, "association aborted: peer found an invalid PDU parameter value"},
		{"silent", func(c net.Conn, _ *assocParams) {
			_, _ = io.Copy(io.Discard, c)
		}, "no answer within 300ms"},
		{"context not accepted", func(c net.Conn, rq *assocParams) {
			accept(c, rq, 16384)
			_, _ = c.Write(encodePDU(pduData, pdv(9, 3, findPending)))
		}, "PDV on presentation context 9, which was not accepted"},
		{"PDV longer than its PDU", func(c net.Conn, rq *assocParams) {
			accept(c, rq, 16384)
			b := pdv(1, 3, findPending)
			_, _ = c.Write(encodePDU(pduData, b[:len(b)-5]))
		}, "PDV claims"},
		{"garbage command set", func(c net.Conn, rq *assocParams) {
			accept(c, rq, 16384)
			_, _ = c.Write(encodePDU(pduData, pdv(1, 3, []byte{0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F})))
		}, "command set: dicom protocol error: element (0000,0000) claims"},
		{"match over the size limit", func(c net.Conn, rq *assocParams) {
			accept(c, rq, 16384)
			_, _ = c.Write(encodePDU(pduData, pdv(1, 3, findPending)))
			chunk := make([]byte, 8000)
			for i := 0; i < 4; i++ {
				if _, err := c.Write(encodePDU(pduData, pdv(1, 0, chunk))); err != nil {
					return
				}
			}
		}, "data set of message 0x8020 is over the limit of 10000 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := hostilePeer(t, tc.script)
			u := &url.URL{Scheme: "dicom", User: url.User("PACS"), Host: addr}
			c, err := Open(u, Options{Timeout: 300 * time.Millisecond, MaxInstanceBytes: 10000})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.FindSeries(context.Background(), pacs.Query{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "PACS at 127.0.0.1:") {
				t.Errorf("error %q does not name the peer", err)
			}
		})
	}
}

// recordingConn counts the PDUs written through it and their largest size.
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.buf.Write(b)
	return r.Conn.Write(b)
}

// TestFragmentation sends a message through a peer allowing only small
// PDUs and reads it back: every PDU honours the limit and the message
// reassembles unchanged.
func TestFragmentation(t *testing.T) {
	lim := &limits{maxPDU: 1 << 16, maxInstance: 1 << 20, timeout: 5 * time.Second}
	c1, c2 := net.Pipe()
	rec := &recordingConn{Conn: c1}
	ctxs := map[byte]presCtx{3: {id: 3, abstract: findStudyRoot, syntaxes: []string{implicitLE}}}
	sender := &assoc{conn: rec, peer: "sender", lim: lim, maxSend: minPeerPDU, ctxs: ctxs}
	receiver := &assoc{conn: c2, peer: "receiver", lim: lim, ctxs: ctxs}
	cmd := encodeCommand(requestElements(cFindRQ, 7, findStudyRoot, true))
	data := make([]byte, 1001)
	for i := range data {
		data[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() { errc <- sender.send(context.Background(), 3, cmd, data) }()
	m, err := receiver.receive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if m.cmd.field != cFindRQ || m.cmd.messageID != 7 || !bytes.Equal(m.data, data) || m.ctxID != 3 {
		t.Fatalf("reassembled message differs: %+v, %d data bytes", m.cmd, len(m.data))
	}
	n := 0
	for b := rec.buf.Bytes(); len(b) > 0; n++ {
		p, err := readPDU(bytes.NewReader(b), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.body) > minPeerPDU {
			t.Fatalf("PDU %d is %d bytes, over the peer's %d", n, len(p.body), minPeerPDU)
		}
		b = b[pduHeaderLen+len(p.body):]
	}
	if want := (len(cmd)+minPeerPDU-pdvHeaderLen-1)/(minPeerPDU-pdvHeaderLen) + (len(data)+minPeerPDU-pdvHeaderLen-1)/(minPeerPDU-pdvHeaderLen); n != want {
		t.Fatalf("%d PDUs, want %d", n, want)
	}
}

// TestSCPRefusesStrangers: the C-MOVE storage SCP accepts only the PACS's
// AE title calling ours.
func TestSCPRefusesStrangers(t *testing.T) {
	u := &url.URL{Scheme: "dicom", User: url.User("PACS"), Host: "127.0.0.1:1", RawQuery: "move=1&scp_port=0&calling=US"}
	c, err := Open(u, Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lim := &limits{maxPDU: 1 << 16, maxInstance: 1 << 20, timeout: 2 * time.Second}
	echo := []presCtx{{id: 1, abstract: verificationClass, syntaxes: []string{implicitLE}}}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.SCPAddr().(*net.TCPAddr).Port))
	for _, tc := range []struct{ called, calling, want string }{
		{"US", "STRANGER", "calling AE title not recognised"},
		{"NOTUS", "PACS", "called AE title not recognised"},
	} {
		_, err := dialAssoc(context.Background(), addr, tc.called, tc.calling, lim, echo, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s calling %s: got %v, want %q", tc.calling, tc.called, err, tc.want)
		}
	}
	// The PACS's own AE title is accepted and answered.
	a, err := dialAssoc(context.Background(), addr, "US", "PACS", lim, echo, nil)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := a.request(context.Background(), verificationClass, cEchoRQ, nil, nil)
	if err != nil || rsp.cmd.field != cEchoRSP || rsp.cmd.status != 0 {
		t.Fatalf("echo to the SCP: %v %+v", err, rsp)
	}
	if err := a.releaseAssoc(); err != nil {
		t.Fatal(err)
	}
}

// TestSCPRefusesOtherHosts: connections from an address that is neither
// the PACS's nor in MovePeers are closed unanswered. 127.0.0.2 is a second
// loopback address on Linux.
func TestSCPRefusesOtherHosts(t *testing.T) {
	for _, tc := range []struct {
		peers  []string
		answer bool
	}{{nil, false}, {[]string{"127.0.0.2"}, true}} {
		u := &url.URL{Scheme: "dicom", User: url.User("PACS"), Host: "127.0.0.1:1", RawQuery: "move=1&scp_port=0&calling=US"}
		c, err := Open(u, Options{Timeout: 2 * time.Second, MovePeers: tc.peers})
		if err != nil {
			t.Fatal(err)
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
		conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.SCPAddr().(*net.TCPAddr).Port)))
		if err != nil {
			t.Fatal(err)
		}
		rq := &assocParams{called: "US", calling: "PACS", maxPDU: 16384, implClass: "1.2.3",
			contexts: []presCtx{{id: 1, abstract: verificationClass, syntaxes: []string{implicitLE}}}}
		_, _ = conn.Write(encodePDU(pduAssociateRQ, encodeAssociate(rq, true)))
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		p, err := readPDU(conn, 1<<16)
		conn.Close()
		c.Close()
		if tc.answer && (err != nil || p.typ != pduAssociateAC) {
			t.Errorf("MovePeers %v: got PDU 0x%02X, %v; want A-ASSOCIATE-AC", tc.peers, p.typ, err)
		}
		if !tc.answer && err == nil {
			t.Errorf("MovePeers %v: a stranger's association got PDU 0x%02X, want the connection closed", tc.peers, p.typ)
		}
	}
}
