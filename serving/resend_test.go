package serving

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestResendParkedResults parks two results the endpoint refused, sends
// one back by id and then the rest, and checks each is delivered once the
// endpoint takes it, after the results that were queued before it.
func TestResendParkedResults(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	for i, b := range []string{"bad", "r1", "bad"} {
		id := fmt.Sprint("id", i)
		if err := s.store.commitResult(resultRecord{ID: id}, AuditRecord{Event: "inference", ResultID: id}, Item{ResultID: id, Bundle: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	f := &flaky{}
	f.up.Store(true)
	srv := s.start(t, f, nil)
	waitFor(t, func() bool { c, _ := s.store.Counts(); return c.Queued == 0 && c.Parked == 2 }, "two results parked")

	if _, err := s.store.Resend("nope"); !errors.Is(err, ErrNotParked) {
		t.Fatalf("resend of an unknown id: %v, want ErrNotParked", err)
	}
	// The endpoint was fixed: it now takes what it refused.
	f.mu.Lock()
	f.fixed = true
	f.mu.Unlock()
	if err := s.store.commitResult(resultRecord{ID: "id3"}, AuditRecord{Event: "inference", ResultID: "id3"}, Item{ResultID: "id3", Bundle: []byte("r3")}); err != nil {
		t.Fatal(err)
	}
	moved, err := s.store.Resend("id2")
	if err != nil || !slices.Equal(moved, []Resent{{"id2", "fhir"}}) {
		t.Fatalf("resend id2: %v %v", moved, err)
	}
	// `site-agent models resend` runs while serve is stopped and the next
	// serve starts with the queue; here the running deliverer is woken.
	srv.wakeDeliverer()
	waitFor(t, func() bool { c, _ := s.store.Counts(); return c.Delivered == 3 }, "id2 delivered")
	if parked, _ := s.store.Parked(); len(parked) != 1 || parked[0].ResultID != "id0" {
		t.Fatalf("still parked %+v, want id0 only", parked)
	}
	if moved, err = s.store.Resend(""); err != nil || !slices.Equal(moved, []Resent{{"id0", "fhir"}}) {
		t.Fatalf("resend all: %v %v", moved, err)
	}
	srv.wakeDeliverer()
	waitFor(t, func() bool { c, _ := s.store.Counts(); return c.Delivered == 4 }, "id0 delivered")
	f.mu.Lock()
	got := slices.Clone(f.got)
	f.mu.Unlock()
	if want := []string{"r1", "r3", "bad", "bad"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	c, _ := s.store.Counts()
	if c.Resent != 2 || c.Queued != 0 {
		t.Fatalf("counts %+v, want 2 resent, none queued", c)
	}
	if parked, _ := s.store.Parked(); len(parked) != 0 {
		t.Fatalf("parked after resending all: %+v", parked)
	}
}

// TestResendParkedSEG: a SEG the PACS refused goes back to the SEG queue,
// attempts reset, its path and UID kept.
func TestResendParkedSEG(t *testing.T) {
	s := newSite(t)
	seg := SEGItem{ResultID: "r1", Path: "/state/serve/seg/r1.dcm", SOPInstanceUID: "2.25.7"}
	if err := s.store.commitResult(resultRecord{ID: "r1"}, AuditRecord{Event: "inference", ResultID: "r1"}, Item{ResultID: "r1", Bundle: []byte("b")}, seg); err != nil {
		t.Fatal(err)
	}
	it, ok, err := s.store.segHead()
	if err != nil || !ok {
		t.Fatalf("SEG queue head: %v %v", ok, err)
	}
	it.Attempts, it.LastError = 1, "the PACS answered 400"
	if err := s.store.segDone(it, true); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.store.ParkedSEGs(); len(p) != 1 || p[0].LastError == "" {
		t.Fatalf("parked SEGs %+v", p)
	}
	moved, err := s.store.Resend("r1")
	if err != nil || !slices.Equal(moved, []Resent{{"r1", "seg"}}) {
		t.Fatalf("resend r1: %v %v", moved, err)
	}
	back, ok, err := s.store.segHead()
	if err != nil || !ok || back.Path != seg.Path || back.SOPInstanceUID != seg.SOPInstanceUID || back.Attempts != 0 || back.LastError != "" || back.Seq == it.Seq {
		t.Fatalf("requeued SEG %+v (%v %v), want %+v with attempts reset under a new seq", back, ok, err, seg)
	}
	if p, _ := s.store.ParkedSEGs(); len(p) != 0 {
		t.Fatalf("still parked: %+v", p)
	}
}
