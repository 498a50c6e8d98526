package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/concord-fl/concord/coordinator/round"
	pb "github.com/concord-fl/concord/proto/concordpb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// session is one connected agent's task stream.
type session struct {
	site     string
	out      chan *pb.CoordinatorMessage
	done     chan struct{}
	once     sync.Once
	version  string
	examples uint64
}

func (s *session) send(m *pb.CoordinatorMessage) {
	select {
	case s.out <- m:
	case <-s.done:
	default:
		// The agent is not reading; it will be sent its task again when it
		// reconnects, so dropping here loses nothing.
		s.close()
	}
}

func (s *session) close() { s.once.Do(func() { close(s.done) }) }

// siteRecord is what the coordinator remembers about a site.
type siteRecord struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	LastSeen time.Time `json:"last_seen"`
	Examples uint64    `json:"examples"`
}

func (c *Coordinator) loadSites() error {
	return c.st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSites).ForEach(func(k, v []byte) error {
			r := &siteRecord{}
			if err := json.Unmarshal(v, r); err != nil {
				return err
			}
			c.sites[r.Name] = r
			return nil
		})
	})
}

func (c *Coordinator) touchSiteLocked(name, version string, examples uint64) {
	r := c.sites[name]
	if r == nil {
		r = &siteRecord{Name: name}
		c.sites[name] = r
	}
	r.LastSeen = c.now().UTC()
	if version != "" {
		r.Version, r.Examples = version, examples
	}
	_ = c.st.db.Update(func(tx *bolt.Tx) error { return putJSON(tx, bSites, name, r) })
}

type agentService struct {
	pb.UnimplementedAgentServer
	c *Coordinator
}

func (a *agentService) site(ctx context.Context) (string, error) {
	id, ok := identify(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	if id.Role != "site" {
		return "", status.Errorf(codes.PermissionDenied, "%s is not a site certificate", id)
	}
	return id.Name, nil
}

// Connect keeps a site's task stream: Hello first, then heartbeats and task
// status from the agent, tasks and heartbeats from the coordinator.
func (a *agentService) Connect(stream pb.Agent_ConnectServer) error {
	c := a.c
	site, err := a.site(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message on the task stream must be Hello")
	}
	sess := &session{site: site, out: make(chan *pb.CoordinatorMessage, 64), done: make(chan struct{}),
		version: hello.Version, examples: hello.Examples}
	if err := stream.Send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Welcome{Welcome: &pb.Welcome{
		Site: site, CoordinatorVersion: Version, HeartbeatSeconds: c.cfg.HeartbeatInterval.Seconds()}}}); err != nil {
		return err
	}
	c.attach(sess)
	defer c.detach(sess)

	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			c.mu.Lock()
			c.touchSiteLocked(site, "", 0)
			c.mu.Unlock()
			if st := m.GetStatus(); st != nil && st.State == "failed" {
				c.bus.emit(Event{Kind: EvTaskFailed, Actor: "site:" + site, Site: site, Detail: fmt.Sprintf("task %s failed: %s", st.TaskId, st.Detail)})
			}
		}
	}()
	hb := time.NewTicker(c.cfg.HeartbeatInterval)
	defer hb.Stop()
	for {
		select {
		case m := <-sess.out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case <-hb.C:
			if err := stream.Send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Heartbeat{Heartbeat: &pb.Heartbeat{UnixMillis: c.now().UnixMilli()}}}); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-sess.done:
			return status.Error(codes.Unavailable, "session replaced or coordinator stopping; reconnect")
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (c *Coordinator) attach(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.sessions[s.site]; old != nil {
		old.close()
	}
	c.sessions[s.site] = s
	c.touchSiteLocked(s.site, s.version, s.examples)
	c.bus.emit(Event{Kind: EvSiteConnected, Actor: "site:" + s.site, Site: s.site, Detail: fmt.Sprintf("site %s connected (agent %s)", s.site, s.version)})
	for _, id := range c.order {
		if j := c.jobs[id]; !j.m.Done() {
			c.stepLocked(j, round.Event{Type: round.EvConnected, Now: c.now(), Site: s.site})
		}
	}
}

func (c *Coordinator) detach(s *session) {
	s.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.site] != s {
		return // replaced by a newer session
	}
	delete(c.sessions, s.site)
	c.bus.emit(Event{Kind: EvSiteLeft, Actor: "site:" + s.site, Site: s.site, Detail: fmt.Sprintf("site %s disconnected", s.site)})
	for _, id := range c.order {
		if j := c.jobs[id]; !j.m.Done() {
			c.stepLocked(j, round.Event{Type: round.EvDisconnected, Now: c.now(), Site: s.site})
		}
	}
}
