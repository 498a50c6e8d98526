package pacs

import (
	"context"
	"sync"
	"time"
)

// throttle paces requests to the PACS: at most n in flight, and starts
// spaced at least 1/rate apart. The clock is a field so that tests count
// what it grants instead of measuring time.
type throttle struct {
	slots    chan struct{}
	interval time.Duration // 0: no pacing

	mu    sync.Mutex
	next  time.Time // the earliest start of the next request
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newThrottle(concurrency int, perSecond float64) *throttle {
	t := &throttle{slots: make(chan struct{}, concurrency), now: time.Now, sleep: sleepCtx}
	if perSecond > 0 {
		t.interval = time.Duration(float64(time.Second) / perSecond)
	}
	return t
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// acquire waits for a slot and the request's turn; release gives the slot
// back once the response is read.
func (t *throttle) acquire(ctx context.Context) (release func(), err error) {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release = func() { <-t.slots }
	if t.interval > 0 {
		t.mu.Lock()
		now := t.now()
		start := t.next
		if start.Before(now) {
			start = now
		}
		t.next = start.Add(t.interval)
		t.mu.Unlock()
		if wait := start.Sub(now); wait > 0 {
			if err := t.sleep(ctx, wait); err != nil {
				release()
				return nil, err
			}
		}
	}
	return release, nil
}
