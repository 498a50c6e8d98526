package dimse

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-fl/concord/imaging/pacs"
)

// Retrieve fetches every instance of a series, with C-GET by default or
// C-MOVE to the client's storage SCP when configured. store receives each
// instance as a Part 10 file; an error from it, or ctx's cancellation,
// aborts the association, which stops the PACS's sub-operations. Calls to
// store never overlap; with C-MOVE they run on the storage SCP's goroutine.
func (c *Client) Retrieve(ctx context.Context, s pacs.Series, store func(sopInstanceUID string, part10 []byte) error) error {
	if s.StudyInstanceUID == "" || s.SeriesInstanceUID == "" {
		return fmt.Errorf("%s: retrieve needs the series' study and series instance UIDs", c)
	}
	keys := encodeElements([]element{
		{tagQueryLevel, []byte("SERIES")},
		{tagStudyUID, []byte(s.StudyInstanceUID)},
		{tagSeriesUID, []byte(s.SeriesInstanceUID)},
	})
	if c.opt.Move {
		return c.move(ctx, keys, store)
	}
	return c.get(ctx, keys, store)
}

// errStore marks an error returned by the caller's store function, which
// Retrieve returns unwrapped of protocol detail.
type errStore struct{ err error }

func (e errStore) Error() string { return e.err.Error() }
func (e errStore) Unwrap() error { return e.err }

func (c *Client) get(ctx context.Context, keys []byte, store func(string, []byte) error) error {
	storeCtxs, roles := storageContexts(c.opt.StorageClasses, 3)
	proposed := append([]presCtx{{id: 1, abstract: getStudyRoot, syntaxes: []string{implicitLE}}}, storeCtxs...)
	a, err := c.dial(ctx, proposed, roles)
	if err != nil {
		return err
	}
	defer a.close()
	rsp, err := a.request(ctx, getStudyRoot, cGetRQ, nil, keys)
	id := a.msgID
	received := 0
	for {
		if err != nil {
			return c.stopped(ctx, a, err)
		}
		cmd := rsp.cmd
		switch {
		case cmd.field == cStoreRQ:
			if err := a.storeSubOp(ctx, rsp, c.called, store); err != nil {
				return c.stopped(ctx, a, err)
			}
			received++
		case cmd.field == cGetRSP && cmd.messageID == id:
			if !isPending(cmd.status) {
				if err := finalStatus("C-GET", cmd, received); err != nil {
					return a.errf("%w", err)
				}
				return a.releaseAssoc()
			}
		default:
			a.abort(2, 2)
			return a.errf("%w: got command 0x%04X for message %d during C-GET %d", ErrProtocol, cmd.field, cmd.messageID, id)
		}
		rsp, err = a.receive(ctx)
	}
}

// stopped ends an association after a failure: A-ABORT tells the PACS to
// stop sending.
func (c *Client) stopped(ctx context.Context, a *assoc, err error) error {
	a.abort(0, 0)
	var se errStore
	if errors.As(err, &se) {
		return se.err
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// storeSubOp keeps one C-STORE sub-operation's instance and answers it.
func (a *assoc) storeSubOp(ctx context.Context, m *message, source string, store func(string, []byte) error) error {
	if err := checkStored(m.cmd); err != nil {
		return a.errf("%w", err)
	}
	ts := a.ctxs[m.ctxID].syntaxes[0]
	status := uint16(0)
	serr := store(m.cmd.sopInstance, part10(m.cmd.sopClass, m.cmd.sopInstance, ts, source, m.data))
	if serr != nil {
		status = 0xA700
	}
	rsp := encodeCommand([]element{
		{tagCommandField, u16Value(cStoreRSP)},
		{tagRespondingTo, u16Value(m.cmd.messageID)},
		{tagDataSetType, u16Value(noDataSet)},
		{tagStatus, u16Value(status)},
		{tagAffectedSOPClass, uidValue(m.cmd.sopClass)},
		{tagAffectedSOPInstance, uidValue(m.cmd.sopInstance)},
	})
	if err := a.send(ctx, m.ctxID, rsp, nil); err != nil {
		return err
	}
	if serr != nil {
		return errStore{serr}
	}
	return nil
}

// finalStatus judges the last C-GET or C-MOVE response: success only when
// no sub-operation failed and every completed one reached us.
func finalStatus(op string, cmd *command, received int) error {
	counts := ""
	if cmd.completed >= 0 || cmd.failed >= 0 || cmd.warning >= 0 {
		counts = fmt.Sprintf("; sub-operations: %d completed, %d failed, %d with warnings",
			max(cmd.completed, 0), max(cmd.failed, 0), max(cmd.warning, 0))
	}
	switch {
	case isCancel(cmd.status):
		return fmt.Errorf("%s cancelled by the PACS after %d instances", op, received)
	case !isSuccess(cmd.status) && !isWarning(cmd.status):
		return fmt.Errorf("%w%s", &statusError{op: op, status: cmd.status, comment: cmd.comment}, counts)
	case cmd.failed > 0 || cmd.warning > 0 || isWarning(cmd.status):
		return fmt.Errorf("%s ended with status 0x%04X (%s)%s", op, cmd.status, statusText(cmd.status), counts)
	case cmd.completed >= 0 && cmd.completed != received:
		return fmt.Errorf("%s: the PACS reports %d instances sent, %d arrived", op, cmd.completed, received)
	}
	return nil
}
