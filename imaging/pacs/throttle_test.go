package pacs

import (
	"context"
	"testing"
	"time"
)

// TestThrottlePacesStarts counts the starts the throttle grants on a
// virtual clock: no second holds more than the rate.
func TestThrottlePacesStarts(t *testing.T) {
	th := newThrottle(1, 4)
	now := time.Unix(0, 0)
	th.now = func() time.Time { return now }
	th.sleep = func(_ context.Context, d time.Duration) error { now = now.Add(d); return nil }
	var starts []time.Time
	for range 20 {
		release, err := th.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, now)
		release()
	}
	for i := range starts {
		n := 0
		for _, s := range starts[i:] {
			if s.Sub(starts[i]) < time.Second {
				n++
			}
		}
		if n > 4 {
			t.Fatalf("%d starts within one second from start %d, rate 4/s", n, i)
		}
	}
	if got := starts[len(starts)-1].Sub(starts[0]); got != 19*250*time.Millisecond {
		t.Errorf("20 starts at 4/s spread over %v", got)
	}
}

// TestThrottleBoundsInFlight: with every slot taken, acquire waits until
// one is released or its context ends.
func TestThrottleBoundsInFlight(t *testing.T) {
	th := newThrottle(2, 0)
	r1, _ := th.acquire(context.Background())
	_, _ = th.acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := th.acquire(ctx); err == nil {
		t.Fatal("a third request started with two in flight")
	}
	r1()
	if _, err := th.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
}
