package round

import (
	"testing"
	"time"
)

// TestWaitingNamesValidateOnly: before key setup a job's status names the
// validate-only key holders it still waits for.
func TestWaitingNamesValidateOnly(t *testing.T) {
	m, err := New(Config{Rounds: 1, MinSites: 2, RoundDeadline: time.Minute, StragglerCutoff: 30 * time.Second,
		Secure: true, ValidateOnly: []string{"v"}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Step(Event{Type: EvStart, Now: t0, Sites: []string{"a", "b"}})
	m.Step(Event{Type: EvTick, Now: t0.Add(time.Second)})
	if w := m.Waiting(); w["v"] != "not connected" || len(w) != 1 {
		t.Fatalf("waiting for %v, want v (not connected)", w)
	}
	if _, err := New(Config{Rounds: 1, MinSites: 1, RoundDeadline: time.Minute, ValidateOnly: []string{"v"}}); err == nil {
		t.Fatal("validate-only key holders were accepted without secure aggregation")
	}
}
