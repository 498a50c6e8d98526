// Package siteagent is the process a hospital runs. It dials out to the
// coordinator (hospitals allow outbound connections only, often through a
// proxy), keeps a task stream open, and for each task runs the site's side
// of the job: data → local training → clipping → encryption → upload.
// Patient data never leaves this process; only model updates do, and with
// secure aggregation only ciphertexts.
//
// The caller's duties: build a Config (cmd/site-agent converts the YAML
// file), call New, then Run with a context that is cancelled to stop. Run
// reconnects with exponential backoff and jitter until then. What the agent
// has computed and submitted is recorded in its state database before it is
// sent, so a restarted agent resumes an interrupted upload instead of
// training again, and never submits twice.
package siteagent

import (
	"context"
	cryptorand "crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Version is reported to the coordinator.
const Version = "0.1.0"

// DataSource supplies the site's training data for a job, already through
// the job's imaging pipeline. It runs inside the hospital.
type DataSource interface {
	Dataset(ctx context.Context, spec *pb.JobSpec) (learning.Dataset, error)
}

// Trainer trains the job's model on local data, starting from global.
type Trainer interface {
	Train(ctx context.Context, req TrainRequest) (TrainResult, error)
}

// TrainRequest is one round's local training.
type TrainRequest struct {
	JobID  string
	Round  int
	Spec   *pb.JobSpec
	Global []float32
	Data   learning.Dataset
	Seed   int64
	// Progress receives a fraction in [0, 1].
	Progress func(float64)
}

// TrainResult is the locally trained model.
type TrainResult struct {
	Weights []float32
	Samples int
	Metrics map[string]float64
}

// Config is the agent's runtime configuration.
type Config struct {
	// Coordinator is host:port.
	Coordinator string
	// TLS is the client configuration with the site's certificate.
	TLS *tls.Config
	// Proxy, when set, is an http:// or https:// proxy reached with CONNECT.
	Proxy *url.URL
	// StateDir holds the agent database and pending updates.
	StateDir string
	Data     DataSource
	// Trainer defaults to local training with the learning package.
	Trainer Trainer
	// KeyPassphrase encrypts this site's secret key material at rest.
	KeyPassphrase []byte
	// KeyRand is the source of the site's secret keys; nil means
	// crypto/rand. Only simulations set it, to make a run reproducible.
	KeyRand io.Reader
	Logger  *slog.Logger
	// Reconnect backoff bounds (defaults 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
}

// Agent is a running site agent.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	st   *state
	conn *grpc.ClientConn
	cli  pb.AgentClient

	keyOnce sync.Once
	sealKey []byte
	keyErr  error

	mu      sync.Mutex
	running map[string]bool // task IDs in progress
	queue   chan *pb.Task
	status  chan *pb.TaskStatus
}

// New opens the agent's state and prepares the connection; it does not
// dial yet.
func New(cfg Config) (*Agent, error) {
	if cfg.Coordinator == "" {
		return nil, errors.New("no coordinator address configured")
	}
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetClientCertificate == nil {
		return nil, errors.New("the agent needs its site certificate: mutual TLS is not optional")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("no state directory configured")
	}
	if cfg.Data == nil {
		return nil, errors.New("no data source configured")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Trainer == nil {
		cfg.Trainer = LocalTrainer{}
	}
	if cfg.KeyRand == nil {
		cfg.KeyRand = cryptorand.Reader
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	st, err := openState(filepath.Join(cfg.StateDir, "agent.db"))
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4 << 20)),
	}
	if cfg.Proxy != nil {
		opts = append(opts, grpc.WithContextDialer(proxyDialer(cfg.Proxy)), grpc.WithNoProxy())
	}
	conn, err := grpc.NewClient(cfg.Coordinator, opts...)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("prepare connection to %s: %w", cfg.Coordinator, err)
	}
	return &Agent{cfg: cfg, log: cfg.Logger, st: st, conn: conn, cli: pb.NewAgentClient(conn),
		running: map[string]bool{}, queue: make(chan *pb.Task, 64), status: make(chan *pb.TaskStatus, 16)}, nil
}

// Run connects and serves tasks until ctx is cancelled.
func (a *Agent) Run(ctx context.Context) error {
	defer a.conn.Close()
	defer a.st.close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.worker(ctx)
	}()
	backoff := a.cfg.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := a.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if time.Since(start) > time.Minute {
			backoff = a.cfg.MinBackoff // the session was healthy for a while
		}
		// Full jitter: sleep uniformly in [backoff/2, backoff).
		sleep := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		a.log.Warn("disconnected from coordinator; reconnecting", "err", err, "retry_in", sleep.Round(time.Millisecond))
		select {
		case <-ctx.Done():
		case <-time.After(sleep):
		}
		backoff = min(backoff*2, a.cfg.MaxBackoff)
	}
	wg.Wait()
	return nil
}

// session runs one task stream until it breaks.
func (a *Agent) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.cli.Connect(ctx)
	if err != nil {
		return err
	}
	examples := uint64(0)
	if c, ok := a.cfg.Data.(Counter); ok {
		examples = uint64(c.Examples())
	}
	if err := stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Hello{Hello: &pb.Hello{Version: Version, Examples: examples}}}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	w := first.GetWelcome()
	if w == nil {
		return errors.New("coordinator did not answer with Welcome")
	}
	a.log.Info("connected to coordinator", "site", w.Site, "coordinator_version", w.CoordinatorVersion)
	hb := time.Duration(w.HeartbeatSeconds * float64(time.Second))
	if hb <= 0 {
		hb = 10 * time.Second
	}
	sendErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(hb)
		defer t.Stop()
		for {
			var m *pb.AgentMessage
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m = &pb.AgentMessage{Msg: &pb.AgentMessage_Heartbeat{Heartbeat: &pb.Heartbeat{UnixMillis: time.Now().UnixMilli()}}}
			case s := <-a.status:
				m = &pb.AgentMessage{Msg: &pb.AgentMessage_Status{Status: s}}
			}
			if err := stream.Send(m); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("coordinator closed the task stream")
			}
			return err
		}
		select {
		case err := <-sendErr:
			return err
		default:
		}
		switch msg := m.Msg.(type) {
		case *pb.CoordinatorMessage_Task:
			a.enqueue(msg.Task)
		case *pb.CoordinatorMessage_Cancel:
			a.log.Info("job cancelled by coordinator", "job", msg.Cancel.JobId, "reason", msg.Cancel.Reason)
		}
	}
}

func (a *Agent) enqueue(t *pb.Task) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running[t.TaskId] {
		return // the coordinator re-sent a task already under way
	}
	a.running[t.TaskId] = true
	select {
	case a.queue <- t:
	default:
		delete(a.running, t.TaskId)
		a.log.Warn("task queue full; the coordinator will send the task again", "task", t.TaskId)
	}
}

// worker runs tasks one at a time: training is CPU-bound and the hospital's
// machine is shared.
func (a *Agent) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-a.queue:
			err := a.runTask(ctx, t)
			// A failed task is retried twice with backoff: most failures
			// (a dropped connection mid-upload) are transient.
			for try, wait := 1, time.Second; err != nil && ctx.Err() == nil && try < 3; try, wait = try+1, wait*2 {
				a.log.Warn("task failed; retrying", "task", t.TaskId, "err", err, "retry_in", wait)
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
				err = a.runTask(ctx, t)
			}
			a.mu.Lock()
			delete(a.running, t.TaskId)
			a.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				a.log.Error("task failed", "task", t.TaskId, "err", err)
				select {
				case a.status <- &pb.TaskStatus{TaskId: t.TaskId, State: "failed", Detail: err.Error()}:
				default:
				}
			}
		}
	}
}

func (a *Agent) runTask(ctx context.Context, t *pb.Task) error {
	switch t.Kind {
	case pb.TaskKind_TASK_KIND_TRAIN:
		return a.train(ctx, t)
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		return a.keySetup(ctx, t)
	case pb.TaskKind_TASK_KIND_KEY_SHARES:
		return a.keyShares(ctx, t)
	case pb.TaskKind_TASK_KIND_DECRYPT:
		return a.decrypt(ctx, t)
	}
	return fmt.Errorf("unknown task kind %v", t.Kind)
}
