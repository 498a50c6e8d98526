package dp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Level is what an epsilon protects.
type Level string

const (
	// Record-level DP (DP-SGD at a site) protects each patient record in
	// the site's data.
	Record Level = "record"
	// Site-level DP (noise on the aggregate) protects a hospital's whole
	// contribution. With a handful of sites it protects little, and its
	// epsilon is not a record-level epsilon: a report names the level.
	Site Level = "site"
)

// MechanismSubsampledGaussian is the only mechanism the accountant knows.
const MechanismSubsampledGaussian = "subsampled-gaussian"

var (
	// ErrBudgetExceeded is returned (wrapped) by Ledger.Check when a planned
	// release would take the site past its budget.
	ErrBudgetExceeded = errors.New("privacy budget exceeded")
	// ErrAlreadyCharged is returned (wrapped) by Ledger.Charge for a second
	// charge of the same job, round, level and upload.
	ErrAlreadyCharged = errors.New("release already charged")
	// ErrCorrupt is returned (wrapped) by UnmarshalJSON when the stored
	// ledger fails its checksum or holds an invalid entry.
	ErrCorrupt = errors.New("privacy ledger is corrupt")
)

// Budget is a site's privacy budget at one level, from the hospital's
// configuration: the most the site agrees to spend, as (Epsilon, Delta)-DP
// over everything the ledger records.
type Budget struct {
	Level   Level   `json:"level"`
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

func (b Budget) validate() error {
	if b.Level != Record && b.Level != Site {
		return fmt.Errorf("%w: budget level %q: want %q or %q", ErrInvalid, b.Level, Record, Site)
	}
	if !(b.Epsilon > 0) || math.IsInf(b.Epsilon, 0) {
		return fmt.Errorf("%w: epsilon budget %v: want a finite number > 0", ErrInvalid, b.Epsilon)
	}
	return checkDelta(b.Delta)
}

// Entry is one release a site made: what it ran, for which job and round,
// and the hash of the upload that left the site.
type Entry struct {
	JobID           string    `json:"job_id"`
	Round           int       `json:"round"`
	Level           Level     `json:"level"`
	Mechanism       string    `json:"mechanism"` // MechanismSubsampledGaussian
	NoiseMultiplier float64   `json:"noise_multiplier"`
	SampleRate      float64   `json:"sample_rate"`
	Steps           int       `json:"steps"`
	Delta           float64   `json:"delta"`      // the δ the job declared, for reports; the ledger converts at the budget's δ
	Accountant      string    `json:"accountant"` // AccountantVersion when charged
	Time            time.Time `json:"time"`
	UploadSHA256    string    `json:"upload_sha256"` // hex SHA-256 of the released bytes
}

// Gaussian is the mechanism the entry ran.
func (e Entry) Gaussian() Gaussian {
	return Gaussian{NoiseMultiplier: e.NoiseMultiplier, SampleRate: e.SampleRate, Steps: e.Steps}
}

func (e Entry) validate(level Level) error {
	switch {
	case e.JobID == "":
		return fmt.Errorf("%w: entry without a job id", ErrInvalid)
	case e.Round < 0:
		return fmt.Errorf("%w: round %d", ErrInvalid, e.Round)
	case e.Level != level:
		return fmt.Errorf("%w: a %q-level release charged to a %q-level budget: keep one ledger per level", ErrInvalid, e.Level, level)
	case e.Mechanism != MechanismSubsampledGaussian:
		return fmt.Errorf("%w: mechanism %q: the accountant knows only %q", ErrInvalid, e.Mechanism, MechanismSubsampledGaussian)
	case e.Accountant == "":
		return fmt.Errorf("%w: entry without an accountant name", ErrInvalid)
	case e.Time.IsZero():
		return fmt.Errorf("%w: entry without a time", ErrInvalid)
	}
	if b, err := hex.DecodeString(e.UploadSHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("%w: upload sha256 %q: want 64 hex digits", ErrInvalid, e.UploadSHA256)
	}
	if err := checkDelta(e.Delta); err != nil {
		return err
	}
	return e.Gaussian().Validate()
}

// Ledger is a site's privacy budget at one level and the releases charged
// to it. Its epsilon is the composition of every entry: their RDP curves,
// recomputed by this accountant at DefaultOrders(), added per order and
// converted at the budget's δ. A Ledger is not safe for concurrent use.
type Ledger struct {
	budget  Budget
	entries []Entry
	curve   []float64 // Σ entries' RDP at defaultOrders
}

// NewLedger returns an empty ledger for budget b.
func NewLedger(b Budget) (*Ledger, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	return &Ledger{budget: b, curve: make([]float64, len(defaultOrders))}, nil
}

// Budget is the ledger's budget.
func (l *Ledger) Budget() Budget { return l.budget }

// Entries returns a copy of the charged releases, oldest first.
func (l *Ledger) Entries() []Entry { return slices.Clone(l.entries) }

// Spent is the epsilon, at the budget's δ, of everything charged; 0 for an
// empty ledger. It may exceed the budget: Charge records every release.
func (l *Ledger) Spent() (float64, error) {
	eps, _, err := Epsilon(l.curve, defaultOrders, l.budget.Delta)
	return eps, err
}

// Check returns nil when running planned on top of what is charged stays
// within the budget (a total equal to the budget is within it), and
// otherwise an error wrapping ErrBudgetExceeded that gives what is spent,
// what planned costs alone, the total it would bring and the budget.
// It charges nothing.
func (l *Ledger) Check(planned Gaussian) error {
	r, err := RDP(planned, defaultOrders)
	if err != nil {
		return err
	}
	total, err := Compose(l.curve, r)
	if err != nil {
		return err
	}
	after, _, err := Epsilon(total, defaultOrders, l.budget.Delta)
	if err != nil {
		return err
	}
	if after <= l.budget.Epsilon {
		return nil
	}
	spent, err := l.Spent()
	if err != nil {
		return err
	}
	alone, _, err := Epsilon(r, defaultOrders, l.budget.Delta)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s-level epsilon spent %.4g of the budget %.4g (delta %g); the planned training (noise multiplier %g, sample rate %g, %d steps) costs %.4g alone and would bring it to %.4g: lower the steps or the sample rate, raise the noise, or ask the site to raise its budget",
		ErrBudgetExceeded, l.budget.Level, spent, l.budget.Epsilon, l.budget.Delta,
		planned.NoiseMultiplier, planned.SampleRate, planned.Steps, alone, after)
}

// Charge records a release. Call it once the release has happened (the
// upload is prepared and accepted), with what actually ran: the steps
// taken and the rate actually used. It records the entry even when the
// total now exceeds the budget, because the release has happened; Check is
// the gate before training. A second charge of the same job, round, level
// and upload hash returns an error wrapping ErrAlreadyCharged and changes
// nothing, so a retried charge after a crash is safe.
func (l *Ledger) Charge(e Entry) error {
	if err := e.validate(l.budget.Level); err != nil {
		return fmt.Errorf("charge job %q round %d: %w", e.JobID, e.Round, err)
	}
	for _, old := range l.entries {
		if old.JobID == e.JobID && old.Round == e.Round && old.Level == e.Level && old.UploadSHA256 == e.UploadSHA256 {
			return fmt.Errorf("charge job %q round %d: %w", e.JobID, e.Round, ErrAlreadyCharged)
		}
	}
	r, err := RDP(e.Gaussian(), defaultOrders)
	if err != nil {
		return err
	}
	curve, err := Compose(l.curve, r)
	if err != nil {
		return err
	}
	l.entries = append(l.entries, e)
	l.curve = curve
	return nil
}

// ledgerJSON is the stored form. Checksum is the hex SHA-256 of the JSON
// of Budget and Entries: it detects a damaged or hand-edited file, not an
// attacker who can recompute it (the audit log is the tamper-evident
// record).
type ledgerJSON struct {
	Format   int     `json:"format"`
	Budget   Budget  `json:"budget"`
	Entries  []Entry `json:"entries"`
	Checksum string  `json:"checksum"`
}

const ledgerFormat = 1

func checksum(b Budget, entries []Entry) (string, error) {
	data, err := json.Marshal(struct {
		Budget  Budget  `json:"budget"`
		Entries []Entry `json:"entries"`
	}{b, entries})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// MarshalJSON stores the budget and entries with a checksum; the site
// agent keeps the bytes in its state database.
func (l *Ledger) MarshalJSON() ([]byte, error) {
	entries := l.entries
	if entries == nil {
		entries = []Entry{}
	}
	sum, err := checksum(l.budget, entries)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ledgerJSON{Format: ledgerFormat, Budget: l.budget, Entries: entries, Checksum: sum})
}

// UnmarshalJSON restores a ledger stored by MarshalJSON. It verifies the
// checksum and every entry and recomputes the RDP curves with this
// accountant; an error wraps ErrCorrupt.
func (l *Ledger) UnmarshalJSON(data []byte) error {
	var s ledgerJSON
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if s.Format != ledgerFormat {
		return fmt.Errorf("%w: format %d, want %d", ErrCorrupt, s.Format, ledgerFormat)
	}
	if s.Entries == nil {
		s.Entries = []Entry{}
	}
	sum, err := checksum(s.Budget, s.Entries)
	if err != nil {
		return err
	}
	if sum != s.Checksum {
		return fmt.Errorf("%w: checksum %s, content hashes to %s", ErrCorrupt, s.Checksum, sum)
	}
	nl, err := NewLedger(s.Budget)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	for _, e := range s.Entries {
		if err := nl.Charge(e); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	*l = *nl
	return nil
}
