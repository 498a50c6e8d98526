package serving

import (
	"context"
	"time"
)

// outbox is one durable queue that drain empties in order: the FHIR
// results and the DICOM SEGs for the PACS. Its functions read and update
// the store; drain owns the order, the waiting and the backoff.
type outbox[T any] struct {
	what string // for logs: "FHIR delivery", "SEG store"
	wake <-chan struct{}
	head func() (T, bool, error)
	send func(context.Context, T) error
	// done removes a sent item; refused says whether an error is
	// permanent, park moves such an item aside with it, and retry records
	// a failed attempt on an item that stays at the head.
	done    func(T) error
	refused func(error) bool
	park    func(T, error) error
	retry   func(T, error) error
	id      func(T) string
}

// drain sends the outbox's items in order until ctx ends. A retryable
// failure keeps the head and waits, doubling the delay up to MaxBackoff; a
// permanent one parks the item (kept, counted, logged) and moves on, so one
// bad item never blocks those behind it. An item is removed only after the
// peer confirmed it; a crash in between sends it again, which the peers
// make harmless (conditional creates; the same SOP instance).
func drain[T any](ctx context.Context, s *Server, ob outbox[T]) {
	backoff := s.cfg.MinBackoff
	for ctx.Err() == nil {
		it, ok, err := ob.head()
		if err != nil {
			s.log.Error(ob.what+": queue unreadable", "err", err)
			sleep(ctx, s.cfg.MaxBackoff)
			continue
		}
		if !ok {
			select {
			case <-ctx.Done():
			case <-ob.wake:
			case <-time.After(30 * time.Second):
			}
			continue
		}
		err = ob.send(ctx, it)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if err := ob.done(it); err != nil {
				s.log.Error(ob.what+": sent, but the queue could not be updated (it will be sent again, harmlessly)", "result", ob.id(it), "err", err)
				sleep(ctx, backoff)
				continue
			}
			backoff = s.cfg.MinBackoff
			continue
		}
		if ob.refused(err) {
			if perr := ob.park(it, err); perr != nil {
				s.log.Error(ob.what+": could not park a refused item", "result", ob.id(it), "err", perr)
				sleep(ctx, backoff)
			}
			continue
		}
		if perr := ob.retry(it, err); perr != nil {
			s.log.Error(ob.what+": record a failed attempt", "err", perr)
		}
		s.log.Warn(ob.what+" failed; will retry", "result", ob.id(it), "retry_in", backoff, "err", err)
		sleep(ctx, backoff)
		backoff = nextBackoff(backoff, s.cfg.MaxBackoff)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// nextBackoff doubles the delay up to max.
func nextBackoff(cur, max time.Duration) time.Duration { return min(2*cur, max) }
