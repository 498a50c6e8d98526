package serving

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-fl/concord/serving/fhirr4"
)

// flaky is an endpoint that is down until up is set, and refuses the
// bundle "bad" for good until fixed is set.
type flaky struct {
	up       atomic.Bool
	mu       sync.Mutex
	fixed    bool
	got      []string
	attempts int
}

func (f *flaky) Deliver(_ context.Context, b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	switch {
	case !f.up.Load():
		return errors.New("dial tcp: connection refused")
	case string(b) == "bad" && !f.fixed:
		return &fhirr4.DeliveryError{Status: 422, Retryable: false, Reason: "Patient.identifier: invalid"}
	}
	f.got = append(f.got, string(b))
	return nil
}

func TestDeliveryInOrderThroughAnOutageAndPastAPermanentRefusal(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	want := []string{"r0", "r1", "r3", "r4"}
	for i, b := range []string{"r0", "r1", "bad", "r3", "r4"} {
		id := fmt.Sprint("id", i)
		if err := s.store.commitResult(resultRecord{ID: id}, AuditRecord{Event: "inference", ResultID: id}, Item{ResultID: id, Bundle: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	f := &flaky{}
	s.start(t, f, nil)
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.attempts >= 3 }, "retries while the endpoint is down")
	if c, _ := s.store.Counts(); c.Queued != 5 || c.Delivered != 0 {
		t.Fatalf("while down: %+v, want all 5 queued", c)
	}
	f.up.Store(true)
	waitFor(t, func() bool { c, _ := s.store.Counts(); return c.Queued == 0 }, "the queue drained")
	f.mu.Lock()
	got := slices.Clone(f.got)
	f.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v in order, once each", got, want)
	}
	parked, err := s.store.Parked()
	c, _ := s.store.Counts()
	if err != nil || len(parked) != 1 || parked[0].ResultID != "id2" || c.Parked != 1 || c.Delivered != 4 {
		t.Fatalf("parked %+v %v, counts %+v", parked, err, c)
	}
	if parked[0].LastError == "" || parked[0].Parked.IsZero() {
		t.Fatalf("parked item lacks its reason or time: %+v", parked[0])
	}
}

func TestBackoffDoublesUpToItsCap(t *testing.T) {
	var got []time.Duration
	for d := 10 * time.Millisecond; len(got) < 5; d = nextBackoff(d, 45*time.Millisecond) {
		got = append(got, d)
	}
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 45 * time.Millisecond, 45 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
}
