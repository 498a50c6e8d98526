package dimse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/concord-fl/concord/imaging"
)

const (
	implVersion = "CONCORD"
	// maxCommandBytes bounds a command set; real ones are a few hundred bytes.
	maxCommandBytes = 64 << 10
	// sendCap bounds the PDUs we send when the peer sets no maximum.
	sendCap = 1 << 20
	// minPeerPDU is the least maximum length a peer may ask for and still
	// leave room for a PDV header and a useful fragment.
	minPeerPDU = 64
)

// errReleased means the peer asked to release the association.
var errReleased = errors.New("peer released the association")

// assoc is one established association. It is used by one goroutine.
type assoc struct {
	conn    net.Conn
	peer    string // "AET at host:port", for errors
	lim     *limits
	maxSend uint32 // largest PDU the peer accepts
	ctxs    map[byte]presCtx
	msgID   uint16
	stopped atomic.Bool
	release func() bool // stops the context watch
}

// limits are the bounds applied to everything read from a peer.
type limits struct {
	maxPDU      uint32 // largest PDU body we accept (and advertise)
	maxInstance int64  // largest data set of one message
	timeout     time.Duration
}

// message is one DIMSE message: its command and, if any, its data set.
type message struct {
	ctxID byte
	cmd   *command
	data  []byte
}

func (a *assoc) errf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{a.peer}, args...)...)
}

// watch makes ctx's cancellation interrupt any read or write in progress.
func (a *assoc) watch(ctx context.Context) {
	if a.release != nil {
		a.release()
	}
	a.release = context.AfterFunc(ctx, func() {
		a.stopped.Store(true)
		_ = a.conn.SetDeadline(time.Unix(1, 0))
	})
}

// deadline arms the per-PDU deadline unless the context has stopped us:
// stopped is set before the past deadline, so a deadline set here cannot
// silently undo a cancellation.
func (a *assoc) deadline(ctx context.Context) error {
	_ = a.conn.SetDeadline(time.Now().Add(a.lim.timeout))
	if a.stopped.Load() {
		return ctx.Err()
	}
	return nil
}

// ioErr turns a read or write error into one that names the peer and says why.
func (a *assoc) ioErr(ctx context.Context, what string, err error) error {
	if a.stopped.Load() && ctx.Err() != nil {
		return a.errf("%s: %w", what, ctx.Err())
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return a.errf("%s: no answer within %s", what, a.lim.timeout)
	}
	return a.errf("%s: %w", what, err)
}

func (a *assoc) writePDU(ctx context.Context, typ byte, body []byte) error {
	if err := a.deadline(ctx); err != nil {
		return a.errf("send: %w", err)
	}
	if _, err := a.conn.Write(encodePDU(typ, body)); err != nil {
		return a.ioErr(ctx, "send", err)
	}
	return nil
}

func (a *assoc) readPDU(ctx context.Context) (pdu, error) {
	if err := a.deadline(ctx); err != nil {
		return pdu{}, a.errf("receive: %w", err)
	}
	p, err := readPDU(a.conn, a.lim.maxPDU)
	if err != nil {
		return pdu{}, a.ioErr(ctx, "receive", err)
	}
	if p.typ == pduAbort {
		if len(p.body) < 4 {
			return pdu{}, a.errf("association aborted")
		}
		return pdu{}, a.errf("association aborted: %s", abortReason(p.body[2], p.body[3]))
	}
	return p, nil
}

// send writes one message, fragmenting command and data set into PDVs
// no larger than the peer's maximum PDU length allows.
func (a *assoc) send(ctx context.Context, ctxID byte, cmd, data []byte) error {
	if err := a.sendPDVs(ctx, ctxID, cmd, true); err != nil {
		return err
	}
	if data != nil {
		return a.sendPDVs(ctx, ctxID, data, false)
	}
	return nil
}

func (a *assoc) sendPDVs(ctx context.Context, ctxID byte, b []byte, isCommand bool) error {
	chunk := int(a.maxSend) - pdvHeaderLen
	for first := true; first || len(b) > 0; first = false {
		n := min(chunk, len(b))
		ctrl := byte(0)
		if isCommand {
			ctrl |= 1
		}
		if n == len(b) {
			ctrl |= 2
		}
		// PDU header and PDV header in one small buffer, the fragment
		// written from the caller's slice without a copy.
		var h [pduHeaderLen + pdvHeaderLen]byte
		h[0] = pduData
		binary.BigEndian.PutUint32(h[2:], uint32(pdvHeaderLen+n))
		binary.BigEndian.PutUint32(h[6:], uint32(n+2))
		h[10], h[11] = ctxID, ctrl
		if err := a.deadline(ctx); err != nil {
			return a.errf("send: %w", err)
		}
		bufs := net.Buffers{h[:], b[:n]}
		if _, err := bufs.WriteTo(a.conn); err != nil {
			return a.ioErr(ctx, "send", err)
		}
		b = b[n:]
	}
	return nil
}

// receive reads the next message, reassembling its fragments. The command
// set is bounded by maxCommandBytes and the data set by maxInstance.
func (a *assoc) receive(ctx context.Context) (*message, error) {
	var cmdBuf, data []byte
	var msg *message
	for {
		p, err := a.readPDU(ctx)
		if err != nil {
			return nil, err
		}
		switch p.typ {
		case pduData:
		case pduReleaseRQ:
			return nil, errReleased
		default:
			a.abort(2, 2)
			return nil, a.errf("%w: unexpected PDU type 0x%02X during a message", ErrProtocol, p.typ)
		}
		b := p.body
		if len(b) == 0 {
			a.abort(2, 6)
			return nil, a.errf("%w: empty P-DATA-TF", ErrProtocol)
		}
		for len(b) > 0 {
			if len(b) < pdvHeaderLen {
				a.abort(2, 6)
				return nil, a.errf("%w: PDV header cut short", ErrProtocol)
			}
			n := binary.BigEndian.Uint32(b)
			if n < 2 || uint64(n) > uint64(len(b)-4) {
				a.abort(2, 6)
				return nil, a.errf("%w: PDV claims %d bytes, %d remain", ErrProtocol, n, len(b)-4)
			}
			id, ctrl, v := b[4], b[5], b[6:4+n]
			b = b[4+n:]
			if _, ok := a.ctxs[id]; !ok {
				a.abort(2, 6)
				return nil, a.errf("%w: PDV on presentation context %d, which was not accepted", ErrProtocol, id)
			}
			if msg != nil && id != msg.ctxID {
				a.abort(2, 6)
				return nil, a.errf("%w: message switches presentation context from %d to %d", ErrProtocol, msg.ctxID, id)
			}
			isCmd := ctrl&1 != 0
			last := ctrl&2 != 0
			switch {
			case msg == nil && isCmd:
				if len(cmdBuf)+len(v) > maxCommandBytes {
					a.abort(2, 6)
					return nil, a.errf("%w: command set over %d bytes", ErrProtocol, maxCommandBytes)
				}
				cmdBuf = append(cmdBuf, v...)
				if !last {
					continue
				}
				cmd, err := decodeCommand(cmdBuf)
				if err != nil {
					a.abort(2, 6)
					return nil, a.errf("%w", err)
				}
				msg = &message{ctxID: id, cmd: cmd}
				if !cmd.hasData {
					if len(b) > 0 {
						a.abort(2, 6)
						return nil, a.errf("%w: data after a command without data set", ErrProtocol)
					}
					return msg, nil
				}
			case msg != nil && !isCmd:
				if int64(len(data))+int64(len(v)) > a.lim.maxInstance {
					a.abort(0, 0)
					return nil, a.errf("data set of message 0x%04X is over the limit of %d bytes", msg.cmd.field, a.lim.maxInstance)
				}
				data = append(data, v...)
				if last {
					if len(b) > 0 {
						a.abort(2, 6)
						return nil, a.errf("%w: PDVs after the last fragment of a message", ErrProtocol)
					}
					msg.data = data
					return msg, nil
				}
			default:
				a.abort(2, 6)
				return nil, a.errf("%w: data set fragment where a command fragment was expected, or the reverse", ErrProtocol)
			}
		}
	}
}

// abort sends an A-ABORT (best effort) and closes the connection.
func (a *assoc) abort(source, reason byte) {
	_ = a.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = a.conn.Write(encodePDU(pduAbort, []byte{0, 0, source, reason}))
	a.close()
}

func (a *assoc) close() {
	if a.release != nil {
		a.release()
	}
	_ = a.conn.Close()
}

// releaseAssoc asks the peer to release and waits (bounded) for its reply.
func (a *assoc) releaseAssoc() error {
	defer a.close()
	ctx := context.Background()
	if err := a.writePDU(ctx, pduReleaseRQ, make([]byte, 4)); err != nil {
		return err
	}
	for {
		p, err := a.readPDU(ctx)
		if err != nil {
			return err
		}
		switch p.typ {
		case pduReleaseRP:
			return nil
		case pduData:
			continue // a late response to a cancelled operation
		default:
			return a.errf("%w: PDU type 0x%02X instead of A-RELEASE-RP", ErrProtocol, p.typ)
		}
	}
}

func (a *assoc) nextID() uint16 {
	a.msgID++
	return a.msgID
}

// request sends one request on the context of its SOP class and returns
// the first response. extra adds command elements (such as the move
// destination).
func (a *assoc) request(ctx context.Context, sopClass string, field uint16, extra []element, data []byte) (*message, error) {
	id, ok := a.contextFor(sopClass)
	if !ok {
		a.abort(0, 0)
		return nil, a.errf("the PACS does not support SOP class %s (presentation context rejected)", sopClass)
	}
	els := append(requestElements(field, a.nextID(), sopClass, data != nil), extra...)
	if err := a.send(ctx, id, encodeCommand(els), data); err != nil {
		return nil, err
	}
	return a.receive(ctx)
}

// contextFor finds an accepted context for an abstract syntax.
func (a *assoc) contextFor(abstract string) (byte, bool) {
	for id, c := range a.ctxs {
		if c.abstract == abstract {
			return id, true
		}
	}
	return 0, false
}

// dialAssoc connects to the peer and negotiates an association.
func dialAssoc(ctx context.Context, addr, called, calling string, lim *limits, proposed []presCtx, roles []roleSel) (*assoc, error) {
	peer := fmt.Sprintf("%s at %s", called, addr)
	d := net.Dialer{Timeout: lim.timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", peer, err)
	}
	a := &assoc{conn: conn, peer: peer, lim: lim}
	a.watch(ctx)
	rq := &assocParams{
		called: called, calling: calling, contexts: proposed, maxPDU: lim.maxPDU,
		implClass: imaging.ImplementationClassUID, implVersion: implVersion, roles: roles,
	}
	if err := a.writePDU(ctx, pduAssociateRQ, encodeAssociate(rq, true)); err != nil {
		a.close()
		return nil, err
	}
	p, err := a.readPDU(ctx)
	if err != nil {
		a.close()
		return nil, err
	}
	switch p.typ {
	case pduAssociateAC:
	case pduAssociateRJ:
		a.close()
		if len(p.body) < 4 {
			return nil, fmt.Errorf("association rejected by %s", peer)
		}
		return nil, fmt.Errorf("association rejected by %s: %s", peer, rejectReason(p.body[1], p.body[2], p.body[3]))
	default:
		a.abort(2, 2)
		return nil, a.errf("%w: PDU type 0x%02X in answer to A-ASSOCIATE-RQ", ErrProtocol, p.typ)
	}
	ac, err := decodeAssociate(p.body, false)
	if err != nil {
		a.abort(2, 6)
		return nil, a.errf("A-ASSOCIATE-AC: %w", err)
	}
	if err := a.adoptAC(ac, proposed); err != nil {
		a.abort(2, 6)
		return nil, err
	}
	return a, nil
}

// adoptAC records the accepted contexts, checking each against what we proposed.
func (a *assoc) adoptAC(ac *assocParams, proposed []presCtx) error {
	a.maxSend = ac.maxPDU
	if a.maxSend == 0 || a.maxSend > sendCap {
		a.maxSend = sendCap
	}
	if a.maxSend < minPeerPDU {
		return a.errf("%w: peer's maximum PDU length %d is too small to carry messages", ErrProtocol, ac.maxPDU)
	}
	a.ctxs = map[byte]presCtx{}
	byID := map[byte]presCtx{}
	for _, c := range proposed {
		byID[c.id] = c
	}
	for _, c := range ac.contexts {
		if c.result != 0 {
			continue
		}
		pc, ok := byID[c.id]
		if !ok || len(c.syntaxes) != 1 || !contains(pc.syntaxes, c.syntaxes[0]) {
			return a.errf("%w: accepted presentation context %d does not match our proposal", ErrProtocol, c.id)
		}
		a.ctxs[c.id] = presCtx{id: c.id, abstract: pc.abstract, syntaxes: c.syntaxes}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
