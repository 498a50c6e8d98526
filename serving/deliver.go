package serving

import (
	"context"
	"errors"
	"time"

	"github.com/concord-fl/concord/serving/fhirr4"
)

// deliverLoop sends the queue in order. A retryable failure keeps the head
// and waits, doubling the delay up to MaxBackoff; a permanent one parks
// the item (kept, counted, logged) and moves on, so one bad result never
// blocks those behind it. An item is removed only after the endpoint
// confirmed it; a crash in between sends it again, and the bundle's
// conditional creates make the second send create nothing.
func (s *Server) deliverLoop(ctx context.Context) {
	backoff := s.cfg.MinBackoff
	for ctx.Err() == nil {
		it, ok, err := s.store.head()
		if err != nil {
			s.log.Error("delivery queue unreadable", "err", err)
			sleep(ctx, s.cfg.MaxBackoff)
			continue
		}
		if !ok {
			select {
			case <-ctx.Done():
			case <-s.wake:
			case <-time.After(30 * time.Second):
			}
			continue
		}
		err = s.cfg.Sender.Deliver(ctx, it.Bundle)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if err := s.store.delivered(it.Seq); err != nil {
				s.log.Error("delivered, but the queue could not be updated (it will be sent again, harmlessly)", "result", it.ResultID, "err", err)
				sleep(ctx, backoff)
				continue
			}
			backoff = s.cfg.MinBackoff
			if s.cfg.OnDelivered != nil {
				s.cfg.OnDelivered(it.ResultID, it.Arrived)
			}
			continue
		}
		it.Attempts++
		it.LastError = err.Error()
		var de *fhirr4.DeliveryError
		if errors.As(err, &de) && !de.Retryable {
			it.Parked = time.Now().UTC()
			if perr := s.store.park(it); perr != nil {
				s.log.Error("could not park a refused result", "result", it.ResultID, "err", perr)
				sleep(ctx, backoff)
				continue
			}
			s.log.Error("the FHIR endpoint refused a result for good: parked (`site-agent models list` shows it, `site-agent models resend` sends it again)",
				"result", it.ResultID, "status", de.Status, "reason", de.Reason, "attempts", it.Attempts)
			continue
		}
		if perr := s.store.failedAttempt(it); perr != nil {
			s.log.Error("record a delivery attempt", "err", perr)
		}
		s.log.Warn("FHIR delivery failed; will retry", "result", it.ResultID, "attempts", it.Attempts, "retry_in", backoff, "err", err)
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
