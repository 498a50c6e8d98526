package round

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Phase is where a job stands.
type Phase string

// Phases of a job. A job without secure aggregation goes straight from
// PhaseWaiting to PhaseTraining.
const (
	PhaseWaiting    Phase = "waiting"     // for enough sites to connect
	PhaseKeySetup   Phase = "key-setup"   // public-key shares and exchange keys
	PhaseKeyShares  Phase = "key-shares"  // sealed Shamir shares, relayed by the caller
	PhaseKeyCombine Phase = "key-combine" // caller assembles the relayed key material
	PhaseTraining   Phase = "training"
	PhaseAggregate  Phase = "aggregating" // caller aggregates the round
	PhaseDecrypting Phase = "decrypting"  // key holders send decryption shares
	PhaseCompleted  Phase = "completed"
	PhaseAborted    Phase = "aborted"
)

// Kind names what a site is asked to deliver, and what an upload carries.
type Kind string

// Deliverables.
const (
	KindKeyShare     Kind = "key-share"
	KindShamirShares Kind = "shamir-shares"
	KindUpdate       Kind = "update"
	KindDecryption   Kind = "decryption-share"
)

// Sentinel errors returned by Accept. Each names a reason an upload is refused.
var (
	ErrJobOver        = errors.New("job is no longer running")
	ErrNotParticipant = errors.New("site is not a participant of this round")
	ErrWrongPhase     = errors.New("the job is not collecting this kind of upload now")
	ErrLate           = errors.New("the round this upload belongs to has closed")
	ErrFutureRound    = errors.New("the upload names a round that has not started")
	ErrDuplicate      = errors.New("this site already delivered this upload")
)

// Config is the part of a job spec the machine needs. Durations are
// measured against Event.Now.
type Config struct {
	Rounds          int
	MinSites        int
	RoundDeadline   time.Duration
	StragglerCutoff time.Duration
	// Sites allowed to take part; empty allows every site that connects.
	Sites []string
	// Exclude lists sites that never take part in training or key setup
	// (the job's validation sites), whether or not Sites is set.
	Exclude []string
	// ValidateOnly lists sites that hold key shares but never train (the
	// validation sites of a secure job): they take part in key setup and
	// may sit on decryption committees, so that what they encrypt is
	// aggregated under the same key, but no training round includes them.
	ValidateOnly []string
	Secure       bool
	// Threshold is the number of key holders needed to decrypt (t of N);
	// 0 means as many as the key holders that train (all key holders when
	// none is validate-only): a sum of fewer contributors than t is never
	// decrypted, so t must not exceed what a round can collect.
	Threshold int
}

// Validate reports a configuration the machine cannot run.
func (c Config) Validate() error {
	switch {
	case c.Rounds < 1:
		return fmt.Errorf("rounds must be at least 1, got %d", c.Rounds)
	case c.MinSites < 1:
		return fmt.Errorf("min_sites must be at least 1, got %d", c.MinSites)
	case c.RoundDeadline <= 0:
		return fmt.Errorf("round deadline must be positive, got %v", c.RoundDeadline)
	case c.StragglerCutoff < 0 || c.StragglerCutoff > c.RoundDeadline:
		return fmt.Errorf("straggler cutoff %v must lie between 0 and the round deadline %v", c.StragglerCutoff, c.RoundDeadline)
	case len(c.Sites) > 0 && len(c.Sites) < c.MinSites:
		return fmt.Errorf("%d sites listed but min_sites is %d", len(c.Sites), c.MinSites)
	case c.Secure && c.Threshold > 0 && c.Threshold < 2:
		return fmt.Errorf("threshold must be at least 2 when set, got %d", c.Threshold)
	case len(c.ValidateOnly) > 0 && !c.Secure:
		return errors.New("validate-only key holders need secure aggregation")
	}
	return nil
}

// State is everything the machine knows. It is plain data: persist it as
// JSON and hand it back to Restore.
type State struct {
	Phase  Phase  `json:"phase"`
	Round  int    `json:"round"` // 1-based; 0 before the first round
	Reason string `json:"reason,omitempty"`

	// PhaseStart is when the current phase (or round) began.
	PhaseStart time.Time `json:"phase_start"`
	// RoundStart is when the current round's training began.
	RoundStart time.Time `json:"round_start"`
	// Members take part in the current phase; Delivered have sent what it needs.
	Members   []string        `json:"members"`
	Delivered map[string]bool `json:"delivered"`

	// Key holders and their Shamir points (1-based), fixed at key setup.
	Points map[string]int `json:"points,omitempty"`
	// Attempt counts decryption attempts within a round: a new active set
	// after a dropout makes earlier shares useless.
	Attempt int `json:"attempt,omitempty"`
	// Contributors of the round being aggregated or decrypted, and the
	// participants it was closed with.
	Contributors []string `json:"contributors,omitempty"`
	Participants []string `json:"participants,omitempty"`

	// Failed holds the members of the current phase that reported they
	// cannot deliver, with their reasons. A member that reconnects is asked
	// again and its failure is forgotten.
	Failed map[string]string `json:"failed,omitempty"`
	// Revoked sites are out of the job for good: their certificates were
	// revoked while it ran.
	Revoked map[string]bool `json:"revoked,omitempty"`

	// Connected is not persisted meaningfully: Restore clears it.
	Connected map[string]bool `json:"-"`
}

// Event is something that happened. Now is the caller's clock.
type Event struct {
	Type EventType
	Now  time.Time
	Site string
	// Sites connected when the job starts (EvStart only).
	Sites []string
	Kind  Kind
	Round int
	// Reason of an Abort, a site's failure or a revocation; Actor is who
	// asked for an abort.
	Reason string
	Actor  string
}

// EventType enumerates events.
type EventType int

// Event types.
const (
	EvStart        EventType = iota + 1 // the job was submitted
	EvConnected                         // a site's task stream opened
	EvDisconnected                      // a site's task stream closed
	EvDelivered                         // a site's upload of Kind completed
	EvTick                              // time passed
	EvKeyCombined                       // the caller formed the collective public key
	EvAggregated                        // the caller finished aggregating Round
	EvAbort                             // an admin aborted the job
	EvFailed                            // the caller could not execute an action
	EvSiteFailed                        // Site reported it cannot deliver Kind for Round (Reason)
	EvRevoked                           // Site's certificate was revoked (Reason)
)

// ActionType enumerates actions.
type ActionType int

// Action types.
const (
	ActSendTask    ActionType = iota + 1 // ask Site to deliver Kind for Round
	ActCombineKey                        // combine the public-key shares of Sites
	ActAggregate                         // aggregate the updates of Sites for Round
	ActRoundClosed                       // Round closed with Sites contributing (notice)
	ActCompleted                         // the job finished all rounds
	ActAborted                           // the job stopped; Reason says why
	ActNote                              // something worth recording (audit, watch)
	ActDiscard                           // drop Site's delivery of Kind for Round: it no longer counts
)

// Action is something the caller must do.
type Action struct {
	Type  ActionType
	Site  string
	Kind  Kind
	Round int
	// Sites: contributors (aggregate), key holders (combine), active
	// decryptors (decryption tasks).
	Sites   []string
	Attempt int
	Reason  string
}

// Machine runs one job.
type Machine struct {
	cfg Config
	st  State
}

// New returns a machine for a job that has not started.
func New(cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Machine{cfg: cfg, st: State{Phase: PhaseWaiting, Delivered: map[string]bool{}, Connected: map[string]bool{}}}, nil
}

// Restore rebuilds a machine from persisted state. After a restart no site
// counts as connected until it reconnects.
func Restore(cfg Config, st State) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st.Delivered == nil {
		st.Delivered = map[string]bool{}
	}
	// Connected is not persisted (it is nil after a restart); a copy taken
	// from a live machine keeps it, which is how a caller rolls back a step.
	st.Connected = cloneSet(st.Connected)
	return &Machine{cfg: cfg, st: st}, nil
}

// State returns a copy of the machine's state for persistence.
func (m *Machine) State() State {
	s := m.st
	s.Members = slices.Clone(m.st.Members)
	s.Contributors = slices.Clone(m.st.Contributors)
	s.Participants = slices.Clone(m.st.Participants)
	s.Delivered = cloneSet(m.st.Delivered)
	s.Connected = cloneSet(m.st.Connected)
	s.Revoked = cloneSet(m.st.Revoked)
	if m.st.Failed != nil {
		s.Failed = make(map[string]string, len(m.st.Failed))
		for k, v := range m.st.Failed {
			s.Failed[k] = v
		}
	}
	if m.st.Points != nil {
		s.Points = make(map[string]int, len(m.st.Points))
		for k, v := range m.st.Points {
			s.Points[k] = v
		}
	}
	return s
}

// Done reports whether the job has ended.
func (m *Machine) Done() bool {
	return m.st.Phase == PhaseCompleted || m.st.Phase == PhaseAborted
}

// Accept checks, without changing anything, whether site may upload kind for
// round now. Callers check before acknowledging the first chunk.
func (m *Machine) Accept(site string, kind Kind, round int) error {
	if m.Done() {
		return ErrJobOver
	}
	want, ok := phaseKind[m.st.Phase]
	if kind == KindUpdate && round < m.st.Round {
		return fmt.Errorf("round %d: %w (now in round %d)", round, ErrLate, m.st.Round)
	}
	if kind == KindUpdate && round > m.st.Round {
		return fmt.Errorf("round %d: %w", round, ErrFutureRound)
	}
	if !ok || want != kind {
		if kind == KindUpdate && round == m.st.Round {
			return fmt.Errorf("round %d: %w", round, ErrLate)
		}
		return fmt.Errorf("%s upload in phase %s: %w", kind, m.st.Phase, ErrWrongPhase)
	}
	if (kind == KindDecryption || kind == KindUpdate) && round != m.st.Round {
		return fmt.Errorf("round %d: %w", round, ErrLate)
	}
	if !slices.Contains(m.st.Members, site) {
		return fmt.Errorf("site %q: %w", site, ErrNotParticipant)
	}
	if m.st.Delivered[site] {
		return fmt.Errorf("site %q, %s: %w", site, kind, ErrDuplicate)
	}
	return nil
}

var phaseKind = map[Phase]Kind{
	PhaseKeySetup:   KindKeyShare,
	PhaseKeyShares:  KindShamirShares,
	PhaseTraining:   KindUpdate,
	PhaseDecrypting: KindDecryption,
}

// Step applies one event and returns the actions it causes.
func (m *Machine) Step(ev Event) []Action {
	if m.Done() {
		return nil
	}
	var acts []Action
	switch ev.Type {
	case EvStart:
		if m.st.Round == 0 && m.st.Phase == PhaseWaiting {
			m.st.PhaseStart = ev.Now
			for _, s := range ev.Sites {
				if m.allowed(s) {
					m.st.Connected[s] = true
				}
			}
		}
	case EvConnected:
		if !m.allowed(ev.Site) {
			return nil
		}
		m.st.Connected[ev.Site] = true
		acts = append(acts, m.onConnect(ev)...)
	case EvDisconnected:
		delete(m.st.Connected, ev.Site)
		if m.st.Phase == PhaseDecrypting && slices.Contains(m.st.Members, ev.Site) && !m.st.Delivered[ev.Site] {
			acts = append(acts, m.reselectDecryptors(ev.Now, ev.Site)...)
		}
	case EvDelivered:
		if err := m.Accept(ev.Site, ev.Kind, ev.Round); err != nil {
			return []Action{{Type: ActNote, Site: ev.Site, Round: ev.Round, Reason: "delivery ignored: " + err.Error()}}
		}
		m.st.Delivered[ev.Site] = true
	case EvKeyCombined:
		if m.st.Phase == PhaseKeyCombine {
			acts = append(acts, m.startRound(ev.Now, 1)...)
			return acts
		}
	case EvAggregated:
		if m.st.Phase == PhaseAggregate && ev.Round == m.st.Round {
			acts = append(acts, Action{Type: ActNote, Round: ev.Round, Reason: fmt.Sprintf("round %d aggregated from %d sites", ev.Round, len(m.st.Contributors))})
			if m.st.Round >= m.cfg.Rounds {
				m.st.Phase = PhaseCompleted
				return append(acts, Action{Type: ActCompleted, Round: m.st.Round})
			}
			return append(acts, m.startRound(ev.Now, m.st.Round+1)...)
		}
	case EvAbort:
		return m.abort(fmt.Sprintf("aborted by %s: %s", orUnknown(ev.Actor), ev.Reason))
	case EvFailed:
		return m.abort(ev.Reason)
	case EvSiteFailed:
		a, ok := m.siteFailed(ev)
		if !ok {
			return a
		}
		acts = append(acts, a...)
	case EvRevoked:
		acts = append(acts, m.revoke(ev)...)
		if m.Done() {
			return acts
		}
	}
	return append(acts, m.advance(ev.Now)...)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (m *Machine) allowed(site string) bool {
	if len(m.cfg.Sites) > 0 && !slices.Contains(m.cfg.Sites, site) && !m.validateOnly(site) {
		return false
	}
	if slices.Contains(m.cfg.Exclude, site) || m.st.Revoked[site] {
		return false
	}
	if m.st.Points != nil && m.st.Phase != PhaseWaiting {
		// After key setup only key holders can take part.
		_, ok := m.st.Points[site]
		return ok
	}
	return true
}

// onConnect re-sends a task to a member that has not delivered, and lets a
// new site join a training round in progress. A round still waiting for
// enough sites (no members yet) is left to advance, which starts it with
// every connected site once there are enough: joining it here would make
// the newcomer the round's only member.
func (m *Machine) onConnect(ev Event) []Action {
	kind, collecting := phaseKind[m.st.Phase]
	if !collecting {
		return nil
	}
	if m.st.Phase == PhaseDecrypting && len(m.st.Members) == 0 {
		return m.reselectDecryptors(ev.Now, "")
	}
	if m.st.Phase == PhaseTraining && len(m.st.Members) == 0 {
		return nil
	}
	delete(m.st.Failed, ev.Site)
	if m.st.Phase == PhaseTraining && !slices.Contains(m.st.Members, ev.Site) {
		if m.validateOnly(ev.Site) {
			return nil
		}
		m.st.Members = sortedAppend(m.st.Members, ev.Site)
		acts := []Action{{Type: ActNote, Site: ev.Site, Round: m.st.Round, Reason: "site joined the round in progress"}}
		return append(acts, Action{Type: ActSendTask, Site: ev.Site, Kind: kind, Round: m.st.Round})
	}
	if slices.Contains(m.st.Members, ev.Site) && !m.st.Delivered[ev.Site] {
		return []Action{{Type: ActSendTask, Site: ev.Site, Kind: kind, Round: m.st.Round, Sites: m.decryptSet(), Attempt: m.st.Attempt}}
	}
	return nil
}

func (m *Machine) decryptSet() []string {
	if m.st.Phase != PhaseDecrypting {
		return nil
	}
	return slices.Clone(m.st.Members)
}

// advance evaluates time- and count-based transitions of the current phase.
func (m *Machine) advance(now time.Time) []Action {
	elapsed := now.Sub(m.st.PhaseStart)
	switch m.st.Phase {
	case PhaseWaiting:
		connected := m.connected(nil)
		trainers := slices.DeleteFunc(slices.Clone(connected), m.validateOnly)
		validators := len(connected) - len(trainers)
		need := m.cfg.MinSites
		ready := len(trainers) >= need
		if m.cfg.Secure && m.cfg.Threshold > len(connected) {
			need, ready = m.cfg.Threshold, false
		}
		if len(m.cfg.Sites) > 0 {
			// An explicit list waits for all listed sites until the deadline.
			ready = len(trainers) == len(m.cfg.Sites) || (ready && elapsed >= m.cfg.StragglerCutoff)
		}
		if ready && validators < len(m.cfg.ValidateOnly) && elapsed < m.cfg.StragglerCutoff {
			// Validate-only key holders join key setup or never: wait for
			// them as for listed sites, up to the straggler cutoff.
			ready = false
		}
		if !ready {
			if elapsed >= m.cfg.RoundDeadline {
				return m.abort(fmt.Sprintf("too few sites: %d connected, the job needs %d; connect more sites or lower min_sites", len(connected), need))
			}
			return nil
		}
		if !m.cfg.Secure {
			return m.startRound(now, 1)
		}
		m.st.Points = make(map[string]int, len(connected))
		for i, s := range connected {
			m.st.Points[s] = i + 1
		}
		return m.startPhase(now, PhaseKeySetup, connected, KindKeyShare, 0)

	case PhaseKeySetup, PhaseKeyShares:
		if len(m.st.Delivered) == len(m.st.Members) {
			if m.st.Phase == PhaseKeySetup {
				// Every key holder deals Shamir shares of its key to the others,
				// so any t of them can later decrypt a sum.
				return m.startPhase(now, PhaseKeyShares, m.st.Members, KindShamirShares, 0)
			}
			m.st.Phase = PhaseKeyCombine
			return []Action{{Type: ActCombineKey, Sites: slices.Clone(m.st.Members)}}
		}
		if len(m.st.Failed) > 0 {
			return m.abort(fmt.Sprintf("key setup cannot complete: every key holder must deliver %s; %s", phaseKind[m.st.Phase], m.failures()))
		}
		if elapsed >= m.cfg.RoundDeadline {
			return m.abort(fmt.Sprintf("key setup incomplete: %d of %d sites delivered %s before the deadline; missing: %s",
				len(m.st.Delivered), len(m.st.Members), phaseKind[m.st.Phase], m.missing()))
		}

	case PhaseTraining:
		if len(m.st.Members) == 0 {
			connected := m.connected(m.eligible())
			if len(connected) >= m.cfg.MinSites {
				return m.startRound(now, m.st.Round)
			}
			if elapsed >= m.cfg.RoundDeadline {
				return m.abort(fmt.Sprintf("round %d: too few sites: %d connected, the job needs %d", m.st.Round, len(connected), m.cfg.MinSites))
			}
			return nil
		}
		got := len(m.st.Delivered)
		pending := m.pending()
		if got+len(pending) < m.cfg.MinSites {
			return m.abort(fmt.Sprintf("round %d cannot complete: %d delivered and %d more can deliver, the round needs %d; %s",
				m.st.Round, got, len(pending), m.cfg.MinSites, m.failures()))
		}
		all := len(pending) == 0
		cut := elapsed >= m.cfg.StragglerCutoff && got >= m.cfg.MinSites
		if all || cut || elapsed >= m.cfg.RoundDeadline {
			if got < m.cfg.MinSites {
				return m.abort(fmt.Sprintf("round %d: only %d of the %d updates needed arrived before the deadline; missing: %s",
					m.st.Round, got, m.cfg.MinSites, m.missing()))
			}
			return m.closeRound(now)
		}

	case PhaseDecrypting:
		if len(m.st.Delivered) == len(m.st.Members) && len(m.st.Members) > 0 {
			m.st.Phase = PhaseAggregate
			return []Action{{Type: ActAggregate, Round: m.st.Round, Sites: slices.Clone(m.st.Contributors), Attempt: m.st.Attempt}}
		}
		if able := m.ableDecryptors(); len(able) < m.threshold() {
			return m.abort(fmt.Sprintf("round %d cannot be decrypted: %d key holders can still take part, %d are needed; %s; nothing was decrypted",
				m.st.Round, len(able), m.threshold(), m.failures()))
		}
		if elapsed >= m.cfg.RoundDeadline {
			return m.abort(fmt.Sprintf("round %d: fewer than %d key holders were available to decrypt; nothing was decrypted; missing: %s", m.st.Round, m.threshold(), m.missing()))
		}
	}
	return nil
}

func (m *Machine) threshold() int {
	if m.cfg.Threshold > 0 {
		return m.cfg.Threshold
	}
	n := 0
	for s := range m.st.Points {
		if !m.validateOnly(s) {
			n++
		}
	}
	return n
}

// eligible returns the sites that may train: key holders when secure,
// less the validate-only ones.
func (m *Machine) eligible() map[string]bool {
	set := m.holders()
	for s := range set {
		if m.validateOnly(s) {
			delete(set, s)
		}
	}
	return set
}

// holders returns the key holders that may decrypt: every key holder not
// revoked, validate-only ones included (nil when not secure).
func (m *Machine) holders() map[string]bool {
	if !m.cfg.Secure {
		return nil
	}
	set := make(map[string]bool, len(m.st.Points))
	for s := range m.st.Points {
		if !m.st.Revoked[s] {
			set[s] = true
		}
	}
	return set
}

func (m *Machine) validateOnly(site string) bool { return slices.Contains(m.cfg.ValidateOnly, site) }

// connected lists connected sites (restricted to within when non-nil), sorted.
func (m *Machine) connected(within map[string]bool) []string {
	var out []string
	for s := range m.st.Connected {
		if within == nil || within[s] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func (m *Machine) startPhase(now time.Time, p Phase, members []string, kind Kind, round int) []Action {
	m.st.Phase = p
	m.st.PhaseStart = now
	m.st.Members = slices.Clone(members)
	m.st.Delivered = map[string]bool{}
	m.st.Failed = nil
	acts := []Action{{Type: ActNote, Round: round, Sites: slices.Clone(members), Reason: fmt.Sprintf("%s started with %d sites", p, len(members))}}
	for _, s := range members {
		acts = append(acts, Action{Type: ActSendTask, Site: s, Kind: kind, Round: round, Sites: m.decryptSet(), Attempt: m.st.Attempt})
	}
	return acts
}

func (m *Machine) startRound(now time.Time, r int) []Action {
	m.st.Round = r
	m.st.Attempt = 0
	m.st.Contributors = nil
	m.st.Failed = nil
	connected := m.connected(m.eligible())
	if len(connected) < m.cfg.MinSites {
		// Wait in the training phase with no members until enough connect.
		m.st.Phase = PhaseTraining
		m.st.PhaseStart = now
		m.st.Members = nil
		m.st.Delivered = map[string]bool{}
		return []Action{{Type: ActNote, Round: r, Reason: fmt.Sprintf("round %d waiting: %d of %d sites connected", r, len(connected), m.cfg.MinSites)}}
	}
	m.st.RoundStart = now
	return m.startPhase(now, PhaseTraining, connected, KindUpdate, r)
}

func (m *Machine) closeRound(now time.Time) []Action {
	contributors := make([]string, 0, len(m.st.Delivered))
	for s := range m.st.Delivered {
		contributors = append(contributors, s)
	}
	sort.Strings(contributors)
	m.st.Contributors = contributors
	m.st.Participants = slices.Clone(m.st.Members)
	acts := []Action{{Type: ActRoundClosed, Round: m.st.Round, Sites: slices.Clone(contributors),
		Reason: fmt.Sprintf("round %d closed: %d of %d participants delivered", m.st.Round, len(contributors), len(m.st.Members))}}
	for _, s := range m.st.Members {
		if !m.st.Delivered[s] {
			acts = append(acts, Action{Type: ActNote, Site: s, Round: m.st.Round, Reason: "straggler left out of the round"})
		}
	}
	if !m.cfg.Secure {
		m.st.Phase = PhaseAggregate
		m.st.PhaseStart = now
		return append(acts, Action{Type: ActAggregate, Round: m.st.Round, Sites: slices.Clone(contributors)})
	}
	m.st.Phase = PhaseDecrypting
	m.st.PhaseStart = now
	m.st.Members = nil
	m.st.Delivered = map[string]bool{}
	return append(acts, m.reselectDecryptors(now, "")...)
}

// reselectDecryptors picks the first t connected key holders as the active
// decryption set; any earlier set's shares become void.
func (m *Machine) reselectDecryptors(now time.Time, lost string) []Action {
	holders := m.connected(m.holders())
	holders = slices.DeleteFunc(holders, func(s string) bool { _, f := m.st.Failed[s]; return f })
	t := m.threshold()
	var acts []Action
	if lost != "" {
		acts = append(acts, Action{Type: ActNote, Site: lost, Round: m.st.Round, Reason: "decryptor disconnected before sending its share"})
	}
	if len(holders) < t {
		m.st.Members = nil
		m.st.Delivered = map[string]bool{}
		return append(acts, Action{Type: ActNote, Round: m.st.Round, Reason: fmt.Sprintf("decryption waiting: %d of %d key holders connected", len(holders), t)})
	}
	m.st.Attempt++
	active := holders[:t]
	m.st.Members = slices.Clone(active)
	m.st.Delivered = map[string]bool{}
	for _, s := range active {
		acts = append(acts, Action{Type: ActSendTask, Site: s, Kind: KindDecryption, Round: m.st.Round, Sites: slices.Clone(active), Attempt: m.st.Attempt})
	}
	return acts
}

func (m *Machine) abort(reason string) []Action {
	m.st.Phase = PhaseAborted
	m.st.Reason = reason
	return []Action{{Type: ActAborted, Round: m.st.Round, Reason: reason}}
}

func cloneSet(s map[string]bool) map[string]bool {
	out := make(map[string]bool, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

func sortedAppend(s []string, v string) []string {
	s = append(s, v)
	sort.Strings(s)
	return s
}

// siteFailed records that a member cannot deliver what the current phase
// asks of it. ok is false when the report does not concern the current
// phase (a stale report), and the actions only note it.
func (m *Machine) siteFailed(ev Event) (acts []Action, ok bool) {
	kind, collecting := phaseKind[m.st.Phase]
	current := collecting && kind == ev.Kind && (ev.Round == m.st.Round || kind == KindKeyShare || kind == KindShamirShares)
	if !current || !slices.Contains(m.st.Members, ev.Site) || m.st.Delivered[ev.Site] {
		return []Action{{Type: ActNote, Site: ev.Site, Round: ev.Round, Reason: fmt.Sprintf("%s failure report for a step no longer open: %s", ev.Kind, ev.Reason)}}, false
	}
	if m.st.Failed == nil {
		m.st.Failed = map[string]string{}
	}
	m.st.Failed[ev.Site] = ev.Reason
	acts = append(acts, Action{Type: ActNote, Site: ev.Site, Round: m.st.Round, Reason: fmt.Sprintf("%s failed at %s: %s", kind, ev.Site, ev.Reason)})
	if m.st.Phase == PhaseDecrypting {
		// The active set cannot decrypt without this share: choose another
		// set from the key holders that have not failed.
		acts = append(acts, m.reselectDecryptors(ev.Now, "")...)
	}
	return acts, true
}

// revoke takes a site out of the job for good. Its delivery in the
// current round, if any, is discarded: the caller drops the upload (and
// with secure aggregation rebuilds the encrypted sum without it).
func (m *Machine) revoke(ev Event) []Action {
	if m.st.Revoked == nil {
		m.st.Revoked = map[string]bool{}
	}
	if m.st.Revoked[ev.Site] {
		return nil
	}
	m.st.Revoked[ev.Site] = true
	delete(m.st.Connected, ev.Site)
	member := slices.Contains(m.st.Members, ev.Site)
	_, holder := m.st.Points[ev.Site]
	acts := []Action{}
	if member || holder {
		acts = append(acts, Action{Type: ActNote, Site: ev.Site, Round: m.st.Round, Reason: "site removed from the job: " + ev.Reason})
	}
	switch m.st.Phase {
	case PhaseKeySetup, PhaseKeyShares:
		if member {
			return append(acts, m.abort(fmt.Sprintf("key setup cannot complete: key holder %s was revoked (%s)", ev.Site, ev.Reason))...)
		}
	case PhaseTraining:
		if !member {
			return acts
		}
		m.st.Members = slices.DeleteFunc(m.st.Members, func(s string) bool { return s == ev.Site })
		if m.st.Delivered[ev.Site] {
			delete(m.st.Delivered, ev.Site)
			acts = append(acts, Action{Type: ActDiscard, Site: ev.Site, Kind: KindUpdate, Round: m.st.Round, Reason: "revoked before the round closed"})
		}
		delete(m.st.Failed, ev.Site)
		if len(m.st.Members) == 0 {
			return append(acts, m.abort(fmt.Sprintf("round %d cannot complete: its last member %s was revoked", m.st.Round, ev.Site))...)
		}
	case PhaseDecrypting:
		if member && !m.st.Delivered[ev.Site] {
			acts = append(acts, m.reselectDecryptors(ev.Now, "")...)
		}
	}
	return acts
}

// pending lists members of the current phase that have neither delivered
// nor failed, sorted.
func (m *Machine) pending() []string {
	var out []string
	for _, s := range m.st.Members {
		if _, failed := m.st.Failed[s]; !failed && !m.st.Delivered[s] {
			out = append(out, s)
		}
	}
	return out
}

// ableDecryptors lists key holders that could still send a decryption
// share this round: not revoked and not failed (connected or not).
func (m *Machine) ableDecryptors() []string {
	var out []string
	for s := range m.holders() {
		if _, failed := m.st.Failed[s]; !failed {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// failures names the failed members and their reasons.
func (m *Machine) failures() string {
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(m.st.Failed)) {
		parts = append(parts, fmt.Sprintf("%s failed: %s", s, m.st.Failed[s]))
	}
	for _, s := range slices.Sorted(maps.Keys(m.st.Revoked)) {
		parts = append(parts, s+" was revoked")
	}
	if len(parts) == 0 {
		return "no site reported a failure"
	}
	return strings.Join(parts, "; ")
}

// missing names the members that have not delivered, and why when known.
func (m *Machine) missing() string {
	var parts []string
	if len(m.st.Members) == 0 && m.st.Phase == PhaseDecrypting {
		for _, s := range m.ableDecryptors() {
			if !m.st.Connected[s] {
				parts = append(parts, s+" (not connected)")
			}
		}
	}
	for _, s := range m.st.Members {
		if m.st.Delivered[s] {
			continue
		}
		switch reason, failed := m.st.Failed[s]; {
		case failed:
			parts = append(parts, fmt.Sprintf("%s (failed: %s)", s, reason))
		case !m.st.Connected[s]:
			parts = append(parts, s+" (not connected)")
		default:
			parts = append(parts, s+" (no answer)")
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Waiting lists what the current step waits for, site by site, with a
// short reason: the sites a job's status shows.
func (m *Machine) Waiting() map[string]string {
	out := map[string]string{}
	switch m.st.Phase {
	case PhaseWaiting:
		for _, s := range slices.Concat(m.cfg.Sites, m.cfg.ValidateOnly) {
			if m.allowed(s) && !m.st.Connected[s] {
				out[s] = "not connected"
			}
		}
	case PhaseTraining, PhaseKeySetup, PhaseKeyShares, PhaseDecrypting:
		if len(m.st.Members) == 0 {
			for _, s := range m.cfg.Sites {
				if m.allowed(s) && !m.st.Connected[s] {
					out[s] = "not connected"
				}
			}
		}
		for _, s := range m.st.Members {
			if m.st.Delivered[s] {
				continue
			}
			switch reason, failed := m.st.Failed[s]; {
			case failed:
				out[s] = "failed: " + reason
			case !m.st.Connected[s]:
				out[s] = "not connected"
			default:
				out[s] = "working on " + string(phaseKind[m.st.Phase])
			}
		}
	}
	return out
}
