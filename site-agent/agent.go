package siteagent

import (
	"context"
	"crypto"
	cryptorand "crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/dp"
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
	// DP, when set, is the record-level DP-SGD to train with; only a
	// RecordDPTrainer receives it.
	DP *jobspec.RecordDP
}

// TrainResult is the locally trained model.
type TrainResult struct {
	Weights []float32
	Samples int
	Metrics map[string]float64
	// With DP: the optimiser steps taken and the examples the Poisson
	// sampling drew over them, which the agent checks against the rate
	// and charges to its privacy ledger.
	Steps, Drawn int
}

// Config is the agent's runtime configuration.
type Config struct {
	// Coordinator is host:port.
	Coordinator string
	// TLS is the client configuration with the site's certificate.
	TLS *tls.Config
	// WitnessKey signs the site's cosignatures of audit checkpoints; nil
	// means a key kept in the agent's state, made on first start.
	WitnessKey *audit.Key
	// AuditLogKey and AuditOrigin, when set (from the site's kit), are the
	// coordinator's audit log key and log name the site witnesses; the
	// coordinator's Welcome must present the same. Empty: pinned from the
	// first Welcome.
	AuditLogKey, AuditOrigin string
	// Proxy, when set, is an http:// or https:// proxy reached with CONNECT.
	Proxy *url.URL
	// StateDir holds the agent database and pending updates.
	StateDir string
	Data     DataSource
	// Trainer defaults to local training with the learning package.
	Trainer Trainer
	// KeyPassphrase encrypts this site's secret key material at rest.
	KeyPassphrase []byte
	// Secrets, when set, keeps the site's secret key material outside the
	// state database (secrets.go): KeyPassphrase must then be empty.
	Secrets SecretStore
	// KeyRand is the source of the site's secret keys; nil means
	// crypto/rand. Only simulations set it, to make a run reproducible.
	KeyRand io.Reader
	Logger  *slog.Logger
	// Reconnect backoff bounds (defaults 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// CheckInterval is how often the data source's Check runs between
	// tasks (default one minute).
	CheckInterval time.Duration
	// ModelLimits bound the models this site trains (limits.go); a zero
	// field is no limit.
	ModelLimits learning.Limits
	// Privacy is the hospital's differential privacy policy: its
	// record-level budget, and whether it takes jobs without DP.
	Privacy PrivacyPolicy
	// ReceiptKey signs the site's privacy receipts; nil means the key of
	// the TLS certificate, whose certificate the coordinator verifies the
	// receipts against.
	ReceiptKey crypto.Signer
	// Drift watches the images arriving at the site against the baseline
	// of the data it last trained on (drift.go).
	Drift DriftConfig
	// Feedback is where clinicians' corrections are collected (feedback.go).
	Feedback FeedbackConfig
	// MetricsListen, when set, is the plain-HTTP management listener
	// (metrics.go): /healthz, /readyz, /metrics and POST /backup.
	MetricsListen string
}

// Agent is a running site agent.
type Agent struct {
	cfg Config
	log *slog.Logger
	st  *state
	// witnessKey signs this site's cosignatures of audit checkpoints.
	witnessKey *audit.Key
	conn       *grpc.ClientConn
	cli        pb.AgentClient

	keyOnce sync.Once
	sealKey []byte
	keyErr  error

	tlsw *tlsWatch

	mu      sync.Mutex
	tasks   map[string]bool // IDs of the queued and the running task
	pending []*pb.Task
	current *runningTask
	wake    chan struct{}
	status  chan *pb.TaskStatus
	// outbox holds validation reports until the task stream takes them;
	// reportReady wakes the session's sender.
	outbox      []*pb.ValidationReport
	reportReady chan struct{}

	health        health
	healthKnown   bool
	healthChanged chan struct{}

	ledger     *dp.Ledger // record level; nil without a budget. Used by the worker only.
	siteLedger *dp.Ledger // site level; nil without a site budget. Used by the worker only.

	drift *driftLoop

	ops        opsState
	metricsLis net.Listener
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
	if cfg.Secrets != nil && len(cfg.KeyPassphrase) > 0 {
		return nil, errSecretsAndPassphrase
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
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Minute
	}
	cfg.Drift = cfg.Drift.withDefaults()
	if err := cfg.Privacy.Validate(); err != nil {
		return nil, err
	}
	st, err := openState(filepath.Join(cfg.StateDir, "agent.db"))
	if err != nil {
		return nil, err
	}
	wk := cfg.WitnessKey
	if wk == nil && cfg.Secrets != nil {
		if wk, err = storedWitnessKey(cfg.Secrets, siteName(cfg)); err != nil {
			st.close()
			return nil, fmt.Errorf("audit witness key: %w", err)
		}
	}
	if wk == nil {
		if wk, err = st.witnessKey(siteName(cfg)); err != nil {
			st.close()
			return nil, fmt.Errorf("audit witness key: %w", err)
		}
	}
	if cfg.AuditLogKey != "" {
		if err := st.pinLogKey(cfg.AuditLogKey, cfg.AuditOrigin); err != nil {
			st.close()
			return nil, err
		}
	}
	w := &tlsWatch{}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(watchedCreds{TransportCredentials: credentials.NewTLS(cfg.TLS), w: w}),
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
	a := &Agent{cfg: cfg, log: cfg.Logger, st: st, conn: conn, cli: pb.NewAgentClient(conn), tlsw: w, witnessKey: wk,
		tasks: map[string]bool{}, wake: make(chan struct{}, 1), status: make(chan *pb.TaskStatus, 16),
		reportReady:   make(chan struct{}, 1),
		healthChanged: make(chan struct{}, 1), drift: newDriftLoop()}
	if err := a.loadLedger(); err != nil {
		conn.Close()
		st.close()
		return nil, err
	}
	if cfg.MetricsListen != "" {
		if a.metricsLis, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			conn.Close()
			st.close()
			return nil, fmt.Errorf("management listener (metrics_listen) on %s: %w", cfg.MetricsListen, err)
		}
	}
	return a, nil
}

// Run connects and serves tasks until ctx is cancelled, and then returns
// nil. It reconnects after transient failures; when this site and the
// coordinator cannot authenticate each other (see ErrPermanent) it stops
// and returns an error that says what to fix.
func (a *Agent) Run(ctx context.Context) error {
	defer a.conn.Close()
	defer a.st.close()
	ctx, stop := context.WithCancel(ctx)
	a.checkData()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		a.serveManagement(ctx)
	}()
	go func() {
		defer wg.Done()
		a.worker(ctx)
	}()
	go func() {
		defer wg.Done()
		a.watchData(ctx)
	}()
	go func() {
		defer wg.Done()
		a.watchDrift(ctx)
	}()
	defer func() {
		stop()
		wg.Wait()
	}()
	backoff := a.cfg.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := a.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if p := a.classifySession(err); p != nil {
			a.log.Error("cannot connect to the coordinator, and retrying cannot help", "err", p)
			return fmt.Errorf("connect to %s: %w", a.cfg.Coordinator, p)
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
	select {
	case <-a.healthChanged: // Hello carries it
	default:
	}
	h := a.currentHealth()
	hello := &pb.Hello{Version: bounded(Version, maxVersion), Examples: uint64(h.examples), DataProblem: h.problem,
		WitnessKey: a.witnessKey.Verifier(), WitnessedSize: a.witnessed()}
	if err := stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Hello{Hello: hello}}); err != nil {
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
	a.tlsw.reset()
	a.ops.setConnected(true)
	defer a.ops.setConnected(false)
	if err := a.pinLog(w); err != nil {
		a.log.Error("audit log witness", "err", err)
	}
	a.log.Info("connected to coordinator", "site", bounded(w.Site, maxIDLen), "coordinator_version", bounded(w.CoordinatorVersion, maxVersion))
	hb := time.Duration(w.HeartbeatSeconds * float64(time.Second))
	if hb <= 0 {
		hb = 10 * time.Second
	}
	if a.drift.latest() != nil {
		a.drift.signal() // the coordinator may have missed it: send it again
	}
	sendErr := make(chan error, 1)
	cosigs := make(chan []byte, 1)
	// Alarms of an earlier session go out first; the site keeps them
	// until they are sent.
	pending := a.unsentAlarms()
	alarms := make(chan *pb.WitnessAlarm, len(pending)+1)
	for _, al := range pending {
		alarms <- al
	}
	go func() {
		t := time.NewTicker(hb)
		defer t.Stop()
		// Reports made while the link was down go first.
		if err := a.sendReports(stream.Send); err != nil {
			sendErr <- err
			return
		}
		for {
			var m *pb.AgentMessage
			select {
			case <-ctx.Done():
				return
			case <-a.reportReady:
				if err := a.sendReports(stream.Send); err != nil {
					sendErr <- err
					return
				}
				continue
			case <-t.C:
				m = &pb.AgentMessage{Msg: &pb.AgentMessage_Heartbeat{Heartbeat: &pb.Heartbeat{UnixMillis: time.Now().UnixMilli()}}}
			case s := <-a.status:
				m = &pb.AgentMessage{Msg: &pb.AgentMessage_Status{Status: s}}
			case <-a.healthChanged:
				m = &pb.AgentMessage{Msg: &pb.AgentMessage_Health{Health: a.currentHealth().proto()}}
			case line := <-cosigs:
				m = &pb.AgentMessage{Msg: &pb.AgentMessage_Cosignature{Cosignature: &pb.Cosignature{SignedCheckpoint: line}}}
			case <-a.drift.ready:
				m = driftMessage(a.drift.latest())
			case al := <-alarms:
				m = &pb.AgentMessage{Msg: &pb.AgentMessage_WitnessAlarm{WitnessAlarm: al}}
			}
			if err := stream.Send(m); err != nil {
				sendErr <- err
				return
			}
			if m.GetHeartbeat() != nil {
				a.ops.touch()
			}
			if al := m.GetWitnessAlarm(); al != nil {
				a.markAlarmSent(al.Checkpoint)
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
		a.ops.touch()
		select {
		case err := <-sendErr:
			return err
		default:
		}
		switch msg := m.Msg.(type) {
		case *pb.CoordinatorMessage_Task:
			a.enqueue(msg.Task)
		case *pb.CoordinatorMessage_Cancel:
			a.cancelJob(msg.Cancel.JobId, msg.Cancel.Reason)
		case *pb.CoordinatorMessage_Checkpoint:
			line, err := a.checkpoint(msg.Checkpoint)
			if err != nil && a.raiseAlarm(err, msg.Checkpoint, alarms) {
				continue
			}
			if err != nil {
				a.log.Error("audit checkpoint not cosigned: the coordinator's audit history may have been truncated, rewritten or forked; tell the consortium",
					"err", bounded(err.Error(), maxDetail))
				continue
			}
			select {
			case cosigs <- line:
			default: // the previous cosignature is still queued; the next checkpoint brings another chance
			}
		}
	}
}
