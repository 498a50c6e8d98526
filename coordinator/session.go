package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// session is one connected agent's task stream.
type session struct {
	site     string
	serial   string // the certificate's serial, checked against revocation
	out      chan *pb.CoordinatorMessage
	done     chan struct{}
	once     sync.Once
	version  string
	examples uint64
	// lastRecv is when the agent last sent anything (unix nanoseconds).
	lastRecv atomic.Int64
	// why is the status Connect returns when the session is closed.
	why atomic.Pointer[status.Status]
	// The site's audit witness key, the checkpoint size it last cosigned
	// and the size last offered to it (guarded by Coordinator.mu).
	witnessKey         string
	witnessed, offered uint64
	offeredSigned      []byte
	offeredAt          time.Time
}

func (s *session) send(m *pb.CoordinatorMessage) {
	select {
	case s.out <- m:
	case <-s.done:
	default:
		// The agent is not reading; it will be sent its task again when it
		// reconnects, so dropping here loses nothing.
		s.closeWith(status.New(codes.Unavailable, "the agent is not reading its task stream; reconnect"))
	}
}

func (s *session) close() {
	s.closeWith(status.New(codes.Unavailable, "session replaced or coordinator stopping; reconnect"))
}

func (s *session) closeWith(st *status.Status) {
	s.once.Do(func() {
		s.why.Store(st)
		close(s.done)
	})
}

// siteRecord is what the coordinator remembers about a site. It is written
// when a site connects, disconnects or changes its health, not on every
// heartbeat.
type siteRecord struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	LastSeen    time.Time `json:"last_seen"`
	Examples    uint64    `json:"examples"`
	DataProblem string    `json:"data_problem,omitempty"`
	// WitnessKey is the site's audit witness key, as it last presented it.
	WitnessKey  string       `json:"witness_key,omitempty"`
	LastFailure *siteFailure `json:"last_failure,omitempty"`
	// Drift is the site's last drift report (retrain.go).
	Drift *driftRecord `json:"drift,omitempty"`
	// WitnessAlarm is the site's last refusal to cosign an audit
	// checkpoint (witness_alarm.go); it stays until an operator resolves
	// the cause, and the site keeps its own copy.
	WitnessAlarm *witnessAlarm `json:"witness_alarm,omitempty"`
}

// siteFailure is a task a site reported it could not do.
type siteFailure struct {
	Site   string    `json:"site"`
	JobID  string    `json:"job_id"`
	Round  int       `json:"round"`
	Task   string    `json:"task"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

func (f *siteFailure) proto() *pb.SiteFailure {
	if f == nil {
		return nil
	}
	return &pb.SiteFailure{Site: f.Site, JobId: f.JobID, Round: uint32(f.Round), Task: f.Task, Reason: f.Reason, UnixMillis: f.Time.UnixMilli()}
}

func (c *Coordinator) loadSites() error {
	return c.st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSites).ForEach(func(k, v []byte) error {
			r := &siteRecord{}
			if err := json.Unmarshal(v, r); err != nil {
				// One unreadable record must not stop the coordinator.
				c.log.Error("unreadable site record skipped", "key", bound(string(k), maxEchoBytes), "err", err)
				return nil
			}
			c.sites[r.Name] = r
			return nil
		})
	})
}

// siteLocked returns the record of a site, creating it in memory.
func (c *Coordinator) siteLocked(name string) *siteRecord {
	r := c.sites[name]
	if r == nil {
		r = &siteRecord{Name: name}
		c.sites[name] = r
	}
	return r
}

// saveSiteLocked persists a site's record.
func (c *Coordinator) saveSiteLocked(r *siteRecord) {
	if err := c.st.db.Update(func(tx *bolt.Tx) error { return putJSON(tx, bSites, r.Name, r) }); err != nil {
		c.log.Error("persist site record", "site", r.Name, "err", err)
	}
}

type agentService struct {
	pb.UnimplementedAgentServer
	c *Coordinator
}

func (a *agentService) site(ctx context.Context) (Identity, error) {
	id, ok := identify(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	if id.Role != "site" {
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s is not a site certificate", id)
	}
	return id, nil
}

// Connect keeps a site's task stream: Hello first, then heartbeats, health
// and task status from the agent, tasks and heartbeats from the
// coordinator. Every send and the wait for Hello are bounded by
// StreamTimeout, and an agent silent for three heartbeat intervals is
// disconnected, so a peer that stops reading or writing holds nothing.
func (a *agentService) Connect(stream pb.Agent_ConnectServer) error {
	c := a.c
	id, err := a.site(stream.Context())
	if err != nil {
		return err
	}
	site := id.Name
	ctx := stream.Context()
	first, err := withinValue(ctx, c.cfg.StreamTimeout, "waiting for Hello", stream.Recv)
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message on the task stream must be Hello")
	}
	sess := &session{site: site, serial: id.Serial, out: make(chan *pb.CoordinatorMessage, 64), done: make(chan struct{}),
		version: bound(hello.Version, maxVersionBytes), examples: hello.Examples, witnessed: hello.WitnessedSize}
	if hello.WitnessKey != "" {
		if _, err := audit.NewTrust(c.bus.alog.Origin(), []string{c.cfg.AuditKey.Verifier()}, nil, []string{hello.WitnessKey}, 1); err != nil {
			return status.Errorf(codes.InvalidArgument, "witness key: %s", bound(err.Error(), maxReasonBytes))
		}
		sess.witnessKey = hello.WitnessKey
	}
	sess.lastRecv.Store(time.Now().UnixNano())
	send := func(m *pb.CoordinatorMessage) error {
		return within(ctx, c.cfg.StreamTimeout, "sending to "+site, func() error { return stream.Send(m) })
	}
	if err := send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Welcome{Welcome: &pb.Welcome{
		Site: site, CoordinatorVersion: Version, HeartbeatSeconds: c.cfg.HeartbeatInterval.Seconds(),
		AuditOrigin: c.bus.alog.Origin(), AuditLogKey: c.cfg.AuditKey.Verifier()}}}); err != nil {
		return err
	}
	if !c.attach(sess, bound(hello.DataProblem, maxReasonBytes)) {
		return status.Errorf(codes.PermissionDenied, "the certificate of site %s was revoked", site)
	}
	defer c.detach(sess)

	pub := peerKey(ctx)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			sess.lastRecv.Store(time.Now().UnixNano())
			// In memory only: the record is written on connect, disconnect
			// and health changes, not on every heartbeat.
			c.mu.Lock()
			c.siteLocked(site).LastSeen = c.now().UTC()
			c.mu.Unlock()
			switch {
			case m.GetStatus() != nil && m.GetStatus().State == "failed":
				st := m.GetStatus()
				c.taskFailed(site, bound(st.TaskId, 256), bound(st.Detail, maxReasonBytes))
			case m.GetDrift() != nil:
				c.driftReported(site, m.GetDrift())
			case m.GetValidation() != nil:
				c.validationReported(site, pub, m.GetValidation())
			case m.GetCosignature() != nil:
				c.cosigned(sess, m.GetCosignature().SignedCheckpoint)
			case m.GetWitnessAlarm() != nil:
				c.witnessAlarm(site, m.GetWitnessAlarm())
			case m.GetHealth() != nil:
				h := m.GetHealth()
				c.setHealth(site, h.Examples, bound(h.DataProblem, maxReasonBytes))
			}
		}
	}()
	silent := 3*c.cfg.HeartbeatInterval + c.cfg.StreamTimeout
	hb := time.NewTicker(c.cfg.HeartbeatInterval)
	defer hb.Stop()
	for {
		select {
		case m := <-sess.out:
			if err := send(m); err != nil {
				return err
			}
		case <-hb.C:
			if time.Since(time.Unix(0, sess.lastRecv.Load())) > silent {
				return status.Errorf(codes.Unavailable, "no heartbeat from %s for %v; reconnect", site, silent)
			}
			if err := send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Heartbeat{Heartbeat: &pb.Heartbeat{UnixMillis: c.now().UnixMilli()}}}); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-sess.done:
			return sess.why.Load().Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// setHealth records what an agent says about its data source.
func (c *Coordinator) setHealth(site string, examples uint64, problem string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.siteLocked(site)
	if r.DataProblem == problem && r.Examples == examples {
		return
	}
	old := r.DataProblem
	r.Examples, r.DataProblem = examples, problem
	c.saveSiteLocked(r)
	switch {
	case problem != "" && problem != old:
		c.bus.emit(Event{Kind: EvSiteHealth, Actor: "site:" + site, Site: site, Detail: fmt.Sprintf("site %s reports a data problem: %s", site, problem)})
	case problem == "" && old != "":
		c.bus.emit(Event{Kind: EvSiteHealth, Actor: "site:" + site, Site: site, Detail: fmt.Sprintf("site %s data source healthy again (%d examples)", site, examples)})
	}
}

// attach registers a session; it refuses a site revoked while this
// coordinator runs.
func (c *Coordinator) attach(s *session, dataProblem string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked[s.serial] {
		return false
	}
	if old := c.sessions[s.site]; old != nil {
		old.close()
	}
	c.sessions[s.site] = s
	r := c.siteLocked(s.site)
	r.LastSeen, r.Version, r.Examples, r.DataProblem = c.now().UTC(), s.version, s.examples, dataProblem
	newKey := s.witnessKey != "" && s.witnessKey != r.WitnessKey
	if newKey {
		r.WitnessKey = s.witnessKey
	}
	c.saveSiteLocked(r)
	if newKey {
		c.bus.emit(Event{Kind: EvSiteWitness, Actor: "site:" + s.site, Site: s.site, Detail: fmt.Sprintf("site %s witnesses the audit log with key %s", s.site, s.witnessKey)})
	}
	detail := fmt.Sprintf("site %s connected (agent %s, %d examples)", s.site, s.version, s.examples)
	if dataProblem != "" {
		detail += "; data problem: " + dataProblem
	}
	c.bus.emit(Event{Kind: EvSiteConnected, Actor: "site:" + s.site, Site: s.site, Detail: detail})
	for _, id := range c.order {
		if j := c.jobs[id]; !j.m.Done() {
			c.stepLocked(j, round.Event{Type: round.EvConnected, Now: c.now(), Site: s.site})
		}
	}
	c.resendValidationLocked(s.site)
	return true
}

func (c *Coordinator) detach(s *session) {
	s.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.site] != s {
		return // replaced by a newer session
	}
	delete(c.sessions, s.site)
	r := c.siteLocked(s.site)
	r.LastSeen = c.now().UTC()
	c.saveSiteLocked(r)
	c.bus.emit(Event{Kind: EvSiteLeft, Actor: "site:" + s.site, Site: s.site, Detail: fmt.Sprintf("site %s disconnected", s.site)})
	for _, id := range c.order {
		if j := c.jobs[id]; !j.m.Done() {
			c.stepLocked(j, round.Event{Type: round.EvDisconnected, Now: c.now(), Site: s.site})
		}
	}
}
