package dimse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/concord-fl/concord/imaging"
)

// maxSCPConns bounds the associations the storage SCP serves at once.
const maxSCPConns = 4

// storageSCP receives C-MOVE sub-operations: it accepts associations only
// from the PACS's addresses with the PACS's AE title calling ours.
type storageSCP struct {
	c       *Client
	ln      net.Listener
	allowed []net.IP
	sink    atomic.Pointer[moveSink]
	slots   chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startSCP(c *Client) (*storageSCP, error) {
	var ips []net.IP
	for _, h := range append([]string{hostOf(c.addr)}, c.opt.MovePeers...) {
		got, err := net.DefaultResolver.LookupIP(context.Background(), "ip", h)
		if err != nil {
			return nil, fmt.Errorf("%s: resolve %q, a host the storage SCP accepts: %w", c, h, err)
		}
		ips = append(ips, got...)
	}
	ln, err := net.Listen("tcp", c.opt.SCPAddr)
	if err != nil {
		return nil, fmt.Errorf("dicom storage SCP: listen on %s: %w", c.opt.SCPAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &storageSCP{c: c, ln: ln, allowed: ips, slots: make(chan struct{}, maxSCPConns), ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func (s *storageSCP) close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *storageSCP) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				slog.Error("dicom storage SCP stopped accepting", "err", err)
			}
			return
		}
		if !s.allowedPeer(conn.RemoteAddr()) {
			slog.Warn("dicom storage SCP refused a connection from outside the PACS", "remote", conn.RemoteAddr().String())
			_ = conn.Close()
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write(encodePDU(pduAssociateRJ, []byte{0, 2, 3, 2}))
			_ = conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			if err := s.session(conn); err != nil && s.ctx.Err() == nil {
				slog.Warn("dicom storage SCP association failed", "err", err)
			}
		}()
	}
}

func (s *storageSCP) allowedPeer(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	for _, ip := range s.allowed {
		if ip.Equal(ta.IP) {
			return true
		}
	}
	return false
}

// session negotiates one incoming association and serves it until release.
func (s *storageSCP) session(conn net.Conn) error {
	c := s.c
	a := &assoc{conn: conn, peer: fmt.Sprintf("storage SCP peer at %s", conn.RemoteAddr()), lim: &c.lim}
	ctx := s.ctx
	a.watch(ctx)
	defer a.close()
	p, err := a.readPDU(ctx)
	if err != nil {
		return err
	}
	if p.typ != pduAssociateRQ {
		a.abort(2, 2)
		return a.errf("%w: PDU type 0x%02X before A-ASSOCIATE-RQ", ErrProtocol, p.typ)
	}
	rq, err := decodeAssociate(p.body, true)
	if err != nil {
		a.abort(2, 6)
		return a.errf("A-ASSOCIATE-RQ: %w", err)
	}
	a.peer = fmt.Sprintf("%s at %s (calling our storage SCP)", rq.calling, conn.RemoteAddr())
	reject := func(reason byte, why string) error {
		_ = a.writePDU(ctx, pduAssociateRJ, []byte{0, 1, 1, reason})
		return a.errf("refused association: %s", why)
	}
	if rq.called != c.opt.CallingAET {
		return reject(7, fmt.Sprintf("called AE title %q is not ours (%q)", rq.called, c.opt.CallingAET))
	}
	if rq.calling != c.called {
		return reject(3, fmt.Sprintf("calling AE title %q is not the PACS's (%q)", rq.calling, c.called))
	}
	ac := &assocParams{called: rq.called, calling: rq.calling, maxPDU: c.lim.maxPDU, implClass: imaging.ImplementationClassUID, implVersion: implVersion}
	a.ctxs = map[byte]presCtx{}
	for _, pc := range rq.contexts {
		res := presCtx{id: pc.id, result: 3}
		if isStorageClass(pc.abstract) || pc.abstract == verificationClass {
			res.result = 4
			for _, ts := range pc.syntaxes {
				if contains(acceptableSyntaxes, ts) {
					res.result, res.syntaxes = 0, []string{ts}
					a.ctxs[pc.id] = presCtx{id: pc.id, abstract: pc.abstract, syntaxes: res.syntaxes}
					break
				}
			}
		}
		if res.syntaxes == nil {
			// A rejected context still names a transfer syntax item.
			res.syntaxes = []string{implicitLE}
		}
		ac.contexts = append(ac.contexts, res)
	}
	a.maxSend = rq.maxPDU
	if a.maxSend == 0 || a.maxSend > sendCap {
		a.maxSend = sendCap
	}
	if a.maxSend < minPeerPDU {
		a.abort(2, 6)
		return a.errf("%w: peer's maximum PDU length %d is too small", ErrProtocol, rq.maxPDU)
	}
	if err := a.writePDU(ctx, pduAssociateAC, encodeAssociate(ac, false)); err != nil {
		return err
	}
	for {
		m, err := a.receive(ctx)
		if errors.Is(err, errReleased) {
			return a.writePDU(ctx, pduReleaseRP, make([]byte, 4))
		}
		if err != nil {
			return err
		}
		switch m.cmd.field {
		case cEchoRQ:
			rsp := encodeCommand([]element{
				{tagCommandField, u16Value(cEchoRSP)},
				{tagRespondingTo, u16Value(m.cmd.messageID)},
				{tagDataSetType, u16Value(noDataSet)},
				{tagStatus, u16Value(0)},
				{tagAffectedSOPClass, uidValue(verificationClass)},
			})
			if err := a.send(ctx, m.ctxID, rsp, nil); err != nil {
				return err
			}
		case cStoreRQ:
			sink := s.sink.Load()
			put := func(uid string, b []byte) error {
				return errors.New("no retrieval is waiting for instances")
			}
			if sink != nil {
				put = sink.put
			}
			if err := a.storeSubOp(ctx, m, c.called, put); err != nil {
				var se errStore
				if !errors.As(err, &se) {
					return err
				}
				// The refusal was answered with a failure status; the
				// waiting C-MOVE sees the error and aborts its own
				// association.
			}
		default:
			a.abort(2, 2)
			return a.errf("%w: command 0x%04X is not served by the storage SCP", ErrProtocol, m.cmd.field)
		}
	}
}
