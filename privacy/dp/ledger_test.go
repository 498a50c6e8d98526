package dp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func entry(job string, round int, m Gaussian) Entry {
	return Entry{JobID: job, Round: round, Level: Record, Mechanism: MechanismSubsampledGaussian,
		NoiseMultiplier: m.NoiseMultiplier, SampleRate: m.SampleRate, Steps: m.Steps, Delta: 1e-5,
		Accountant: AccountantVersion, Time: time.Date(2026, 11, 27, 10, round, 0, 0, time.UTC),
		UploadSHA256: strings.Repeat("ab", 32)}
}

func mustLedger(t *testing.T, b Budget) *Ledger {
	t.Helper()
	l, err := NewLedger(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The budget is refused exactly past its boundary: a total equal to the
// budget passes, the next float below it refuses.
func TestLedgerBoundary(t *testing.T) {
	a := Gaussian{NoiseMultiplier: 1.1, SampleRate: 0.02, Steps: 200}
	planned := Gaussian{NoiseMultiplier: 0.9, SampleRate: 0.05, Steps: 50}
	probe := mustLedger(t, Budget{Record, 100, 1e-5})
	for _, e := range []Entry{entry("7", 1, a), entry("7", 2, planned)} {
		if err := probe.Charge(e); err != nil {
			t.Fatal(err)
		}
	}
	exact, err := probe.Spent()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		budget float64
		ok     bool
	}{
		{exact, true},
		{math.Nextafter(exact, 0), false},
		{math.Nextafter(exact, math.Inf(1)), true},
		{exact / 2, false},
	} {
		l := mustLedger(t, Budget{Record, tc.budget, 1e-5})
		if err := l.Charge(entry("7", 1, a)); err != nil {
			t.Fatal(err)
		}
		err := l.Check(planned)
		if (err == nil) != tc.ok {
			t.Errorf("budget %.17g (total %.17g): Check error %v, want ok=%v", tc.budget, exact, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBudgetExceeded) {
			t.Errorf("budget %v: %v does not wrap ErrBudgetExceeded", tc.budget, err)
		}
	}
	// The refusal says what is spent, what the step costs and the budget.
	l := mustLedger(t, Budget{Record, 1, 1e-5})
	if err := l.Charge(entry("7", 1, a)); err != nil {
		t.Fatal(err)
	}
	spent, _ := l.Spent()
	alone, _ := Spent(planned.NoiseMultiplier, planned.SampleRate, planned.Steps, 1e-5)
	err = l.Check(planned)
	for _, want := range []string{"spent", "budget 1 ", "costs", "record-level"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	for _, v := range []float64{spent, alone} {
		if s := fmt.Sprintf("%.4g", v); err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("refusal %q lacks %s (spent %v, step alone %v)", err, s, spent, alone)
		}
	}
}

// Two different mechanisms compose by adding their RDP curves per order,
// which is tighter than adding their epsilons.
func TestLedgerComposition(t *testing.T) {
	a := Gaussian{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 500}
	b := Gaussian{NoiseMultiplier: 3, SampleRate: 1, Steps: 1}
	l := mustLedger(t, Budget{Record, 10, 1e-5})
	if err := l.Charge(entry("1", 0, a)); err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(entry("2", 0, b)); err != nil {
		t.Fatal(err)
	}
	ra, _ := RDP(a, defaultOrders)
	rb, _ := RDP(b, defaultOrders)
	sum, _ := Compose(ra, rb)
	want, _, _ := Epsilon(sum, defaultOrders, 1e-5)
	got, err := l.Spent()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("ledger ε %v, want %v from the added curves", got, want)
	}
	ea, _ := Spent(a.NoiseMultiplier, a.SampleRate, a.Steps, 1e-5)
	eb, _ := Spent(b.NoiseMultiplier, b.SampleRate, b.Steps, 1e-5)
	if !(got > max(ea, eb) && got < ea+eb) {
		t.Errorf("composed ε %v: want between max(%v, %v) and their sum %v", got, ea, eb, ea+eb)
	}
}

func TestLedgerCharge(t *testing.T) {
	g := Gaussian{NoiseMultiplier: 1, SampleRate: 0.1, Steps: 10}
	l := mustLedger(t, Budget{Record, 0.5, 1e-5})
	if eps, _ := l.Spent(); eps != 0 {
		t.Fatalf("empty ledger spent %v", eps)
	}
	// A release is recorded even past the budget: it happened.
	if err := l.Charge(entry("9", 3, g)); err != nil {
		t.Fatal(err)
	}
	if eps, _ := l.Spent(); !(eps > 0.5) {
		t.Fatalf("spent %v; this release costs more than 0.5", eps)
	}
	if err := l.Charge(entry("9", 3, g)); !errors.Is(err, ErrAlreadyCharged) || len(l.Entries()) != 1 {
		t.Errorf("second charge of one upload: %v, %d entries", err, len(l.Entries()))
	}
	bad := func(f func(*Entry)) Entry { e := entry("9", 4, g); f(&e); return e }
	for name, e := range map[string]Entry{
		"site level in a record ledger": bad(func(e *Entry) { e.Level = Site }),
		"unknown mechanism":             bad(func(e *Entry) { e.Mechanism = "laplace" }),
		"no job":                        bad(func(e *Entry) { e.JobID = "" }),
		"short hash":                    bad(func(e *Entry) { e.UploadSHA256 = "abcd" }),
		"no time":                       bad(func(e *Entry) { e.Time = time.Time{} }),
		"no accountant":                 bad(func(e *Entry) { e.Accountant = "" }),
		"rate above 1":                  bad(func(e *Entry) { e.SampleRate = 2 }),
		"NaN noise":                     bad(func(e *Entry) { e.NoiseMultiplier = math.NaN() }),
		"delta 0":                       bad(func(e *Entry) { e.Delta = 0 }),
	} {
		if err := l.Charge(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if len(l.Entries()) != 1 {
		t.Errorf("refused charges were recorded: %d entries", len(l.Entries()))
	}
	for _, b := range []Budget{{"patient", 1, 1e-5}, {Record, 0, 1e-5}, {Record, math.Inf(1), 1e-5}, {Site, 1, 0}, {Site, 1, 1}} {
		if _, err := NewLedger(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("budget %+v: %v, want ErrInvalid", b, err)
		}
	}
}

func TestLedgerPersistence(t *testing.T) {
	l := mustLedger(t, Budget{Record, 8, 1e-5})
	for i, g := range []Gaussian{{1.1, 0.01, 300}, {0.8, 0.05, 40}, {2, 1, 3}} {
		if err := l.Charge(entry("12", i, g)); err != nil {
			t.Fatal(err)
		}
	}
	data, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var back Ledger
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	want, _ := l.Spent()
	got, _ := back.Spent()
	if got != want || back.Budget() != l.Budget() || len(back.Entries()) != 3 {
		t.Fatalf("round trip: spent %v budget %+v %d entries; want %v %+v 3", got, back.Budget(), len(back.Entries()), want, l.Budget())
	}
	for i, e := range back.Entries() {
		o := l.Entries()[i]
		if !e.Time.Equal(o.Time) || e.JobID != o.JobID || e.Gaussian() != o.Gaussian() || e.UploadSHA256 != o.UploadSHA256 {
			t.Errorf("entry %d: %+v, want %+v", i, e, o)
		}
	}
	again, _ := json.Marshal(&back)
	if string(again) != string(data) {
		t.Errorf("re-marshalled ledger differs:\n%s\n%s", again, data)
	}
	// An empty ledger round-trips too.
	empty := mustLedger(t, Budget{Site, 2, 1e-6})
	data0, _ := json.Marshal(empty)
	if err := json.Unmarshal(data0, &back); err != nil || back.Budget().Level != Site || len(back.Entries()) != 0 {
		t.Errorf("empty ledger: %v, %+v", err, back.Budget())
	}

	for name, edit := range map[string]func(string) string{
		"steps edited":  func(s string) string { return strings.Replace(s, `"steps":300`, `"steps":30`, 1) },
		"budget raised": func(s string) string { return strings.Replace(s, `"epsilon":8`, `"epsilon":80`, 1) },
		"entry removed": func(s string) string {
			i := strings.Index(s, `{"job_id"`)
			j := strings.Index(s[i:], `},`)
			return s[:i] + s[i+j+2:]
		},
		"truncated":      func(s string) string { return s[:len(s)/2] },
		"unknown format": func(s string) string { return strings.Replace(s, `"format":1`, `"format":2`, 1) },
	} {
		bad := edit(string(data))
		if bad == string(data) {
			t.Fatalf("%s: edit changed nothing", name)
		}
		var x Ledger
		if err := x.UnmarshalJSON([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
