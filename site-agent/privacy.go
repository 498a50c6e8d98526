package siteagent

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// PrivacyPolicy is the hospital's record-level differential privacy
// policy (agent.yaml privacy:). It is the site's to set: a job's spec asks
// for DP, the site decides whether it can afford it.
type PrivacyPolicy struct {
	// Budget is the record-level (ε, δ) the site agrees to spend over all
	// jobs together. Nil: the agent takes no DP job (jobs without DP run as
	// usual, unless RequireDP).
	Budget *dp.Budget
	// RequireDP refuses every job that does not train with record-level DP.
	RequireDP bool
	// SiteBudget is the site-level (ε, δ) the site agrees to spend on
	// jobs with privacy.level site (noise on its updates). Nil: the agent
	// takes no site-level job. It is a separate promise from Budget and
	// its ledger is kept apart (dp.Level).
	SiteBudget *dp.Budget
}

// Bounds of a site's budget: beyond them a budget promises nothing.
const (
	maxBudgetEpsilon = 100
	maxBudgetDelta   = 1e-3
)

// Validate reports a policy the agent cannot enforce.
func (p PrivacyPolicy) Validate() error {
	if p.Budget == nil && p.RequireDP {
		return errors.New("privacy.require_dp is set but privacy.budget is not: the agent would refuse every job; set a budget (epsilon, delta)")
	}
	return errors.Join(checkBudget("privacy.budget", p.Budget, dp.Record), checkBudget("privacy.site_budget", p.SiteBudget, dp.Site))
}

func checkBudget(field string, b *dp.Budget, level dp.Level) error {
	switch {
	case b == nil:
		return nil
	case b.Level != level:
		return fmt.Errorf("%s is for level %q: it holds the %s-level budget", field, b.Level, level)
	case !(b.Epsilon > 0 && b.Epsilon <= maxBudgetEpsilon):
		return fmt.Errorf("%s.epsilon is %v: a finite number in (0, %d]", field, b.Epsilon, maxBudgetEpsilon)
	case !(b.Delta > 0 && b.Delta <= maxBudgetDelta):
		return fmt.Errorf("%s.delta is %v: a finite number in (0, %g]", field, b.Delta, maxBudgetDelta)
	}
	return nil
}

var (
	bPrivacy      = []byte("privacy")
	bReceipts     = []byte("receipts")
	keyLedger     = []byte("ledger/record")
	keySiteLedger = []byte("ledger/site")
)

// ledgerKey is where the ledger of a level is stored.
func ledgerKey(level dp.Level) []byte {
	if level == dp.Site {
		return keySiteLedger
	}
	return keyLedger
}

// ledgerOf is the agent's ledger of a level; nil without that budget.
func (a *Agent) ledgerOf(level dp.Level) *dp.Ledger {
	if level == dp.Site {
		return a.siteLedger
	}
	return a.ledger
}

// StoredReceipt is one release's receipt as the agent keeps it: the one it
// signed and, once the coordinator returned it, the countersigned one.
type StoredReceipt struct {
	Round         int    `json:"round"`
	UploadSHA256  string `json:"upload_sha256"`
	Signed        []byte `json:"signed"`
	Countersigned []byte `json:"countersigned,omitempty"`
}

// loadLedger reads the stored ledgers of both levels and puts each under
// its configured budget: the entries stay, the budget is the hospital's
// current one. A level without a configured budget has no ledger.
func (a *Agent) loadLedger() error {
	var err error
	if a.ledger, err = a.loadLedgerOf(a.cfg.Privacy.Budget, keyLedger); err != nil {
		return err
	}
	a.siteLedger, err = a.loadLedgerOf(a.cfg.Privacy.SiteBudget, keySiteLedger)
	return err
}

func (a *Agent) loadLedgerOf(b *dp.Budget, key []byte) (*dp.Ledger, error) {
	if b == nil {
		return nil, nil
	}
	l, err := dp.NewLedger(*b)
	if err != nil {
		return nil, err
	}
	var stored []byte
	if err := a.st.db.View(func(tx *bolt.Tx) error {
		stored = bytes.Clone(tx.Bucket(bPrivacy).Get(key))
		return nil
	}); err != nil {
		return nil, err
	}
	if stored != nil {
		var old dp.Ledger
		if err := old.UnmarshalJSON(stored); err != nil {
			return nil, fmt.Errorf("the privacy ledger in the agent's state: %w (restore agent.db from a backup; do not delete it: the ledger is what this site has spent)", err)
		}
		for _, e := range old.Entries() {
			if err := l.Charge(e); err != nil {
				return nil, fmt.Errorf("the privacy ledger in the agent's state: %w", err)
			}
		}
		if old.Budget() != *b {
			a.log.Info("privacy budget changed in the agent's configuration", "level", b.Level, "was_epsilon", old.Budget().Epsilon, "was_delta", old.Budget().Delta,
				"epsilon", b.Epsilon, "delta", b.Delta, "entries", len(old.Entries()))
		}
	}
	data, err := l.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if err := a.st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bPrivacy).Put(key, data) }); err != nil {
		return nil, err
	}
	return l, nil
}

// privacyPolicyRefuses returns why this site refuses the task's job under
// its privacy policy whatever its data, or nil. The refusal is permanent:
// the same job, policy and trainer refuse the same way again.
func (a *Agent) privacyPolicyRefuses(t *pb.Task) error {
	level := t.Spec.GetPrivacy().GetLevel()
	if level == string(dp.Site) {
		return a.sitePolicyRefuses(t)
	}
	if level != string(dp.Record) {
		if a.cfg.Privacy.RequireDP {
			return permanentf("job %s does not train with record-level differential privacy (privacy.level %q), and this site requires it "+
				"(privacy.require_dp in its agent.yaml): resubmit the job with privacy.level: record", t.JobId, level)
		}
		return nil
	}
	if a.ledger == nil {
		return permanentf("job %s asks for record-level differential privacy, but this site has no privacy budget "+
			"(privacy.budget in its agent.yaml), so it takes no DP job: ask the site to set one, or leave it out of the job", t.JobId)
	}
	if _, ok := a.cfg.Trainer.(RecordDPTrainer); !ok {
		return permanentf("job %s asks for record-level differential privacy, but this site cannot honour it: its trainer (%T) does not carry out DP-SGD; "+
			"train this site with the built-in or the external trainer, or leave it out of the job", t.JobId, a.cfg.Trainer)
	}
	return nil
}

// privacyGate decides, for this site's data, with which DP-SGD it trains
// the task: nil for a job without record-level DP. Over budget, it refuses
// permanently, with the numbers.
func (a *Agent) privacyGate(t *pb.Task, examples int) (*jobspec.RecordDP, error) {
	if err := a.privacyPolicyRefuses(t); err != nil {
		return nil, err
	}
	if t.Spec.GetPrivacy().GetLevel() != string(dp.Record) {
		return nil, nil
	}
	d, err := jobspec.DPConfig(t.Spec, examples)
	if err != nil {
		return nil, permanent(err)
	}
	remaining := max(1, d.Rounds-int(t.Round)+1)
	rest := dp.Gaussian{NoiseMultiplier: d.NoiseMultiplier, SampleRate: d.SampleRate, Steps: remaining * d.StepsPerRound}
	if err := a.ledger.Check(rest); err != nil {
		return nil, permanentf("site %s refuses job %s at round %d: the rest of the job (%d rounds of %d steps) would exceed its privacy budget: %w",
			a.siteName(), t.JobId, t.Round, remaining, d.StepsPerRound, err)
	}
	return d, nil
}

// RecordDPTrainer is a Trainer that carries out TrainRequest.DP:
// per-example clipping and noise, Poisson sampling at its rate, and
// TrainResult.Steps and Drawn as they happened. The agent gives a job with
// record-level DP only to such a trainer.
type RecordDPTrainer interface {
	Trainer
	TrainsRecordDP()
}

// receiptSigner is the key that signs privacy receipts: Config.ReceiptKey,
// or the site certificate's key.
func (a *Agent) receiptSigner() (crypto.Signer, error) {
	if a.cfg.ReceiptKey != nil {
		return a.cfg.ReceiptKey, nil
	}
	if len(a.cfg.TLS.Certificates) > 0 {
		if s, ok := a.cfg.TLS.Certificates[0].PrivateKey.(crypto.Signer); ok {
			return s, nil
		}
	}
	return nil, errors.New("no key to sign privacy receipts with: the site certificate's key is not available to the agent")
}

// chargeAndRecord charges the ledger with what ran, signs the round's
// receipt, and records the submission, the ledger and the receipt in one
// transaction: an update is never recorded (and so never sent) uncharged,
// and a failed transaction leaves the ledger as it was.
//
// rel is what ran: for record level, the DP-SGD of the round with the
// steps taken; for site level, one Gaussian release (q = 1, one step) of
// the round's noise multiplier, with the clip and the fewest contributors
// the noise was calibrated for.
func (a *Agent) chargeAndRecord(t *pb.Task, sub *submission, rel release) error {
	ledger := a.ledgerOf(rel.level)
	prev, err := ledger.MarshalJSON()
	if err != nil {
		return err
	}
	g := rel.mechanism
	steps := g.Steps
	e := dp.Entry{JobID: t.JobId, Round: int(t.Round), Level: rel.level, Mechanism: dp.MechanismSubsampledGaussian,
		NoiseMultiplier: g.NoiseMultiplier, SampleRate: g.SampleRate, Steps: steps, Delta: rel.delta, Accountant: dp.AccountantVersion,
		Time: time.Now().UTC(), UploadSHA256: hex.EncodeToString(sub.SHA256)}
	if err := ledger.Charge(e); err != nil && !errors.Is(err, dp.ErrAlreadyCharged) {
		return permanent(err)
	}
	restore := func(err error) error {
		if uerr := ledger.UnmarshalJSON(prev); uerr != nil {
			return errors.Join(err, uerr)
		}
		return err
	}
	spent, err := ledger.Spent()
	if err != nil {
		return restore(err)
	}
	signer, err := a.receiptSigner()
	if err != nil {
		return restore(permanent(err))
	}
	r := dp.Receipt{Site: a.siteName(), JobID: t.JobId, Round: int(t.Round), Level: rel.level, Mechanism: e.Mechanism,
		NoiseMultiplier: e.NoiseMultiplier, SampleRate: e.SampleRate, Steps: steps, Delta: e.Delta, EpsilonSpent: spent,
		Budget: ledger.Budget(), Accountant: dp.AccountantVersion, UploadSHA256: e.UploadSHA256, Time: e.Time,
		UpdateClip: rel.clip, MinContributors: rel.minContributors}
	sub.Receipt, err = dp.SignReceipt(r, signer)
	if err != nil {
		return restore(permanent(err))
	}
	ledgerData, err := ledger.MarshalJSON()
	if err != nil {
		return restore(err)
	}
	subData, err := json.Marshal(sub)
	if err != nil {
		return restore(err)
	}
	err = a.st.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bSubmissions).Put([]byte(sub.Key), subData); err != nil {
			return err
		}
		if err := tx.Bucket(bPrivacy).Put(ledgerKey(rel.level), ledgerData); err != nil {
			return err
		}
		return updateReceipts(tx, t.JobId, func(rs []StoredReceipt) []StoredReceipt {
			return append(rs, StoredReceipt{Round: int(t.Round), UploadSHA256: e.UploadSHA256, Signed: sub.Receipt})
		})
	})
	if err != nil {
		return restore(fmt.Errorf("record the update and its privacy charge: %w", err))
	}
	a.log.Info("privacy budget charged", "level", rel.level, "job", t.JobId, "round", t.Round, "noise_multiplier", e.NoiseMultiplier,
		"sample_rate", e.SampleRate, "steps", steps, "epsilon_spent", spent, "epsilon_budget", r.Budget.Epsilon)
	return nil
}

func updateReceipts(tx *bolt.Tx, job string, f func([]StoredReceipt) []StoredReceipt) error {
	b := tx.Bucket(bReceipts)
	var rs []StoredReceipt
	if v := b.Get([]byte(job)); v != nil {
		if err := json.Unmarshal(v, &rs); err != nil {
			return fmt.Errorf("stored receipts of job %s: %w", job, err)
		}
	}
	data, err := json.Marshal(f(rs))
	if err != nil {
		return err
	}
	return b.Put([]byte(job), data)
}

// keepCountersigned stores the coordinator's countersignature of a sent
// receipt, once it has checked that it is this site's receipt, unchanged,
// and countersigned with the coordinator's audit key the site pinned.
func (a *Agent) keepCountersigned(job string, sub *submission, cs []byte) {
	if len(sub.Receipt) == 0 {
		return
	}
	if len(cs) == 0 {
		a.log.Debug("the coordinator returned no countersigned privacy receipt", "upload", sub.Key)
		return
	}
	signer, err := a.receiptSigner()
	if err != nil {
		a.log.Warn("cannot check the countersigned privacy receipt", "upload", sub.Key, "err", err)
		return
	}
	r, err := dp.VerifyReceipt(cs, signer.Public())
	if err == nil {
		// With the coordinator's audit key pinned (witness.go), check its
		// countersignature too.
		if vkey := a.st.auditGet(kLogKey); vkey != nil {
			if coordPub, _, kerr := audit.VerifierPublicKey(string(vkey)); kerr == nil {
				_, _, err = dp.VerifyCountersigned(cs, signer.Public(), coordPub)
			}
		}
	}
	sum := hex.EncodeToString(sub.SHA256)
	if err == nil && (r.UploadSHA256 != sum || r.JobID != job) {
		err = errors.New("it is the receipt of another upload")
	}
	if err != nil {
		a.log.Warn("the coordinator's countersigned privacy receipt is not this site's receipt; not kept", "upload", sub.Key, "err", err)
		return
	}
	err = a.st.db.Update(func(tx *bolt.Tx) error {
		return updateReceipts(tx, job, func(rs []StoredReceipt) []StoredReceipt {
			for i := range rs {
				if rs[i].UploadSHA256 == sum && rs[i].Round == r.Round {
					rs[i].Countersigned = cs
					return rs
				}
			}
			return append(rs, StoredReceipt{Round: r.Round, UploadSHA256: sum, Signed: sub.Receipt, Countersigned: cs})
		})
	})
	if err != nil {
		a.log.Warn("could not store the countersigned privacy receipt", "upload", sub.Key, "err", err)
	}
}

// PrivacyRecord is what an agent's state holds about its differential
// privacy: the record-level and site-level ledgers (nil if the agent never
// had that budget), the receipts of each job, and the witness alarms it
// raised (the audit checkpoints it refused to cosign).
type PrivacyRecord struct {
	Ledger     *dp.Ledger
	SiteLedger *dp.Ledger
	Receipts   map[string][]StoredReceipt
	Alarms     []Alarm
}

// ErrStateLocked is returned (wrapped) by ReadPrivacy when a running agent
// holds the state database.
var ErrStateLocked = errors.New("the agent's state database is in use")

// ReadPrivacy reads the privacy ledger and receipts from an agent's state
// folder, read-only. A running agent holds its database: ReadPrivacy waits
// up to timeout and then returns an error wrapping ErrStateLocked.
func ReadPrivacy(stateDir string, timeout time.Duration) (*PrivacyRecord, error) {
	db, err := openStateReadOnly(stateDir, timeout)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := &PrivacyRecord{Receipts: map[string][]StoredReceipt{}}
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bPrivacy); b != nil {
			for _, l := range []struct {
				key []byte
				dst **dp.Ledger
			}{{keyLedger, &out.Ledger}, {keySiteLedger, &out.SiteLedger}} {
				if v := b.Get(l.key); v != nil {
					*l.dst = &dp.Ledger{}
					if err := (*l.dst).UnmarshalJSON(v); err != nil {
						return err
					}
				}
			}
		}
		var err error
		if out.Alarms, err = readAlarms(tx); err != nil {
			return err
		}
		b := tx.Bucket(bReceipts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rs []StoredReceipt
			if err := json.Unmarshal(v, &rs); err != nil {
				return fmt.Errorf("receipts of job %s: %w", k, err)
			}
			out.Receipts[string(k)] = slices.Clip(rs)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
