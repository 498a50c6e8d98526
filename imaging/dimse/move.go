package dimse

import (
	"context"
	"sync"
)

// moveSink receives the instances of the C-MOVE in progress.
type moveSink struct {
	store func(string, []byte) error
	mu    sync.Mutex
	n     int
	err   error // the first error from store; later instances are refused
}

func (s *moveSink) put(uid string, part10 []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err := s.store(uid, part10); err != nil {
		s.err = err
		return err
	}
	s.n++
	return nil
}

func (s *moveSink) result() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.err
}

// move asks the PACS to send the series to our storage SCP, whose
// associations deliver into this call's sink.
func (c *Client) move(ctx context.Context, keys []byte, store func(string, []byte) error) error {
	c.moveMu.Lock()
	defer c.moveMu.Unlock()
	sink := &moveSink{store: store}
	c.scp.sink.Store(sink)
	defer c.scp.sink.Store(nil)

	a, err := c.dial(ctx, []presCtx{{id: 1, abstract: moveStudyRoot, syntaxes: []string{implicitLE}}}, nil)
	if err != nil {
		return err
	}
	defer a.close()
	dest := []element{{tagMoveDestination, []byte(c.opt.CallingAET)}}
	rsp, err := a.request(ctx, moveStudyRoot, cMoveRQ, dest, keys)
	id := a.msgID
	for {
		if err != nil {
			return c.stopped(ctx, a, err)
		}
		if _, serr := sink.result(); serr != nil {
			return c.stopped(ctx, a, errStore{serr})
		}
		cmd := rsp.cmd
		if cmd.field != cMoveRSP || cmd.messageID != id {
			a.abort(2, 2)
			return a.errf("%w: got command 0x%04X for message %d during C-MOVE %d", ErrProtocol, cmd.field, cmd.messageID, id)
		}
		if !isPending(cmd.status) {
			n, serr := sink.result()
			if serr != nil {
				return c.stopped(ctx, a, errStore{serr})
			}
			if err := finalStatus("C-MOVE", cmd, n); err != nil {
				return a.errf("%w", err)
			}
			return a.releaseAssoc()
		}
		rsp, err = a.receive(ctx)
	}
}
