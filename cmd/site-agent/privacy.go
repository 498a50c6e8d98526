package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/privacy/dp"
	siteagent "github.com/concord-fl/concord/site-agent"
)

const privacyHelp = `Show what this site has released under differential privacy, at each level it has a budget for
(record: DP-SGD, privacy.budget; site: noise on its updates, privacy.site_budget): the budget, the
epsilon spent (at the budget's delta, composed over every release by the same accountant the
agent uses), each release (job, round, noise multiplier, sample rate, steps, upload SHA-256) and
whether the coordinator countersigned its receipt. The two levels are different promises and are
never added. It also shows the witness alarms the agent raised: audit checkpoints it refused to
cosign because the coordinator's history was truncated, rewritten or forked.

It reads the agent's state folder (state_dir in agent.yaml) without changing it. A running
agent holds its state database: stop the agent first, or the command says it is locked.`

// PrivacyReport is the JSON object `site-agent privacy --json` prints: the
// record-level ledger at the top level, the site-level one under "site".
type PrivacyReport struct {
	LedgerReport
	Site          *LedgerReport     `json:"site,omitempty"` // null: the agent never had a site-level budget
	WitnessAlarms []siteagent.Alarm `json:"witness_alarms"`
	StateDir      string            `json:"state_dir"`
}

// LedgerReport is one level's ledger.
type LedgerReport struct {
	Budget  *dp.Budget       `json:"budget"` // null: the agent never had a budget at this level
	Spent   float64          `json:"epsilon_spent"`
	Entries []PrivacyRelease `json:"entries"`
}

// PrivacyRelease is one ledger entry and the state of its receipt.
type PrivacyRelease struct {
	dp.Entry
	Receipt string `json:"receipt"` // "countersigned", "signed" (no countersignature yet) or "none"
}

func ledgerReport(l *dp.Ledger, receipts map[string][]siteagent.StoredReceipt) (LedgerReport, error) {
	rep := LedgerReport{Entries: []PrivacyRelease{}}
	if l == nil {
		return rep, nil
	}
	b := l.Budget()
	rep.Budget = &b
	var err error
	if rep.Spent, err = l.Spent(); err != nil {
		return rep, err
	}
	for _, e := range l.Entries() {
		state := "none"
		for _, r := range receipts[e.JobID] {
			if r.Round == e.Round && r.UploadSHA256 == e.UploadSHA256 {
				state = "signed"
				if len(r.Countersigned) > 0 {
					state = "countersigned"
				}
			}
		}
		rep.Entries = append(rep.Entries, PrivacyRelease{Entry: e, Receipt: state})
	}
	return rep, nil
}

func privacyCmd(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	dir, asJSON, code, ok := stateDirArgs(c, args, "print the ledgers and alarms as one JSON object", stdout, stderr)
	if !ok {
		return code
	}
	rec, err := siteagent.ReadPrivacy(dir, 2*time.Second)
	if err != nil {
		if errors.Is(err, siteagent.ErrStateLocked) {
			return c.Fail(stderr, fmt.Errorf("%w\n(the ledger is also in the agent's log: every charge is logged as \"privacy budget charged\")", err))
		}
		return c.Fail(stderr, err)
	}
	rep := PrivacyReport{StateDir: dir, WitnessAlarms: rec.Alarms}
	if rep.WitnessAlarms == nil {
		rep.WitnessAlarms = []siteagent.Alarm{}
	}
	if rep.LedgerReport, err = ledgerReport(rec.Ledger, rec.Receipts); err != nil {
		return c.Fail(stderr, err)
	}
	if rec.SiteLedger != nil {
		site, err := ledgerReport(rec.SiteLedger, rec.Receipts)
		if err != nil {
			return c.Fail(stderr, err)
		}
		rep.Site = &site
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			return c.Fail(stderr, err)
		}
		return 0
	}
	printPrivacy(stdout, rep)
	return 0
}

func printPrivacy(w io.Writer, rep PrivacyReport) {
	for _, al := range rep.WitnessAlarms {
		sent := "sent to the coordinator"
		if !al.Sent {
			sent = "not yet sent to the coordinator"
		}
		fmt.Fprintf(w, "WITNESS ALARM %s: refused to cosign the audit checkpoint of size %d (%s): %s\n",
			al.Time.UTC().Format(time.DateTime), al.Size, sent, al.Reason)
	}
	if len(rep.WitnessAlarms) > 0 {
		fmt.Fprintln(w, "The coordinator's audit history is not what this site witnessed: tell the consortium.")
		fmt.Fprintln(w)
	}
	if rep.Budget == nil && rep.Site == nil {
		fmt.Fprintln(w, "No privacy ledger: this agent has never had a budget (privacy.budget or privacy.site_budget in agent.yaml),")
		fmt.Fprintln(w, "so it has taken no job with differential privacy.")
		return
	}
	if rep.Budget != nil {
		printLedger(w, rep.LedgerReport)
	}
	if rep.Site != nil {
		if rep.Budget != nil {
			fmt.Fprintln(w)
		}
		printLedger(w, *rep.Site)
	}
	fmt.Fprintln(w, "\nEpsilons of separate releases do not add up: the total is composed by the accountant (Rényi DP).")
	if rep.Budget != nil && rep.Site != nil {
		fmt.Fprintln(w, "Record-level and site-level epsilons are different promises and are never added.")
	}
}

func printLedger(w io.Writer, rep LedgerReport) {
	b := rep.Budget
	fmt.Fprintf(w, "%s-level privacy budget: epsilon %g at delta %g\n", b.Level, b.Epsilon, b.Delta)
	fmt.Fprintf(w, "spent: epsilon %.4g (%.1f%% of the budget) over %d releases (accountant %s)\n",
		rep.Spent, 100*rep.Spent/b.Epsilon, len(rep.Entries), dp.AccountantVersion)
	if len(rep.Entries) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tROUND\tNOISE\tSAMPLE RATE\tSTEPS\tDELTA\tEPSILON ALONE\tTIME (UTC)\tUPLOAD SHA-256\tRECEIPT")
	for _, e := range rep.Entries {
		alone, err := dp.Spent(e.NoiseMultiplier, e.SampleRate, e.Steps, b.Delta)
		a := fmt.Sprintf("%.4g", alone)
		if err != nil {
			a = "?"
		}
		fmt.Fprintf(tw, "%s\t%d\t%g\t%.4g\t%d\t%g\t%s\t%s\t%.16s…\t%s\n", e.JobID, e.Round, e.NoiseMultiplier, e.SampleRate, e.Steps,
			e.Delta, a, e.Time.UTC().Format(time.DateTime), e.UploadSHA256, e.Receipt)
	}
	tw.Flush()
}

// stateDirArgs parses the flags of the commands that read an agent's state
// folder offline (privacy, sent, drift): --state DIR, or --config FILE's
// state_dir, and --json.
func stateDirArgs(c *cli.Command, args []string, jsonUsage string, stdout, stderr io.Writer) (dir string, asJSON bool, code int, ok bool) {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file`: its state_dir is read")
	stateDir := fs.String("state", "", "the agent's state `folder` (instead of --config)")
	jsonOut := fs.Bool("json", false, jsonUsage)
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return "", false, code, false
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return "", false, code, false
	}
	if dir = *stateDir; dir == "" {
		fc, abs, err := readConfig(*configPath)
		if err != nil {
			return "", false, c.Fail(stderr, err), false
		}
		if fc.StateDir == "" {
			return "", false, c.Fail(stderr, fmt.Errorf("config %s has no state_dir", *configPath)), false
		}
		dir = abs(fc.StateDir)
	}
	return dir, *jsonOut, 0, true
}
