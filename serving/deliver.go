package serving

import (
	"context"
	"errors"
	"time"

	"github.com/concord-fl/concord/serving/fhirr4"
)

// deliverLoop sends the FHIR results in order (see drain); a
// *fhirr4.DeliveryError that is not retryable parks the result.
func (s *Server) deliverLoop(ctx context.Context) {
	drain(ctx, s, outbox[Item]{
		what: "FHIR delivery", wake: s.wake, head: s.store.head,
		send: func(ctx context.Context, it Item) error { return s.cfg.Sender.Deliver(ctx, it.Bundle) },
		done: func(it Item) error {
			if err := s.store.delivered(it.Seq); err != nil {
				return err
			}
			if s.cfg.OnDelivered != nil {
				s.cfg.OnDelivered(it.ResultID, it.Arrived)
			}
			return nil
		},
		refused: func(err error) bool {
			var de *fhirr4.DeliveryError
			return errors.As(err, &de) && !de.Retryable
		},
		park: func(it Item, err error) error {
			it.Attempts++
			it.LastError, it.Parked = err.Error(), time.Now().UTC()
			if err := s.store.park(it); err != nil {
				return err
			}
			s.log.Error("the FHIR endpoint refused a result for good: parked (`site-agent models list` shows it, `site-agent models resend` sends it again)",
				"result", it.ResultID, "reason", it.LastError, "attempts", it.Attempts)
			return nil
		},
		retry: func(it Item, err error) error {
			it.Attempts++
			it.LastError = err.Error()
			return s.store.failedAttempt(it)
		},
		id: func(it Item) string { return it.ResultID },
	})
}
