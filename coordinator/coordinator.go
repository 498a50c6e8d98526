// Package coordinator is Concord's central service: it registers site
// agents, runs jobs round by round, aggregates updates it receives over the
// Agent service, keeps the model registry and answers the admin CLI.
//
// All round decisions are made by the pure state machine in
// coordinator/round; this package is the I/O around it. Its duties, in the
// order the round package asks for them:
//
//   - an upload is checked (round.Machine.Accept, the task's nonce) before
//     its first chunk is acknowledged, and every chunk is persisted in the
//     embedded bbolt database before it is acknowledged;
//   - the machine's state is persisted before the actions of a step run;
//   - a round's aggregate, the server optimiser's state and the transition
//     to the next round are written in one transaction, so a crash at any
//     point neither loses nor repeats a round.
//
// Every admin action and round event passes through one event stream (see
// Event): each event is a record of the signed, site-witnessed audit log
// (privacy/audit), and the logs, metrics and `jobs watch` read the same
// stream. The coordinator never holds key material for the data: with
// secure aggregation it adds ciphertexts and combines decryption shares
// using privacy/he only; its one key signs audit records, checkpoints,
// compliance reports and the countersignatures of privacy receipts.
package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Version is reported to agents and admins.
const Version = "0.1.0"

// Policy says which roles may call which methods. Unknown methods are denied.
func Policy() pki.Policy {
	return pki.Policy{
		"/concord.v1.Agent/":             {pki.RoleSite},
		"/concord.v1.Admin/":             {pki.RoleAdmin},
		"/concord.v1.Admin/ListSites":    {pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver},
		"/concord.v1.Admin/ListJobs":     {pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver},
		"/concord.v1.Admin/GetJob":       {pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver},
		"/concord.v1.Admin/WatchJob":     {pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver},
		"/concord.v1.Admin/ListModels":   {pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver},
		"/concord.v1.Admin/GetModelInfo": {pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver},
		"/concord.v1.Admin/ApproveJob":   {pki.RoleAdmin},
		"/concord.v1.Admin/ListEvents":   {pki.RoleAdmin, pki.RoleAuditor},
		"/concord.v1.Admin/GetModel":     {pki.RoleAdmin, pki.RoleAuditor},
		"/concord.v1.Admin/ExportAudit":  {pki.RoleAdmin, pki.RoleAuditor},
		"/concord.v1.Admin/Info":         {pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver},
		"/concord.v1.Admin/Backup":       {pki.RoleAdmin},
	}
}

// Config is the runtime configuration. cmd/coordinator builds it from the
// YAML file and flags.
type Config struct {
	// Listen is the TCP address to serve on, e.g. ":7443" or "127.0.0.1:0".
	Listen string
	// TLS must require and verify client certificates.
	TLS *tls.Config
	// Inventory lists the certificates the consortium CA issued and which
	// are revoked; a certificate not in it is refused.
	Inventory pki.InventorySource
	// StatePath is the bbolt database file.
	StatePath string
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TickInterval is how often deadlines are evaluated (default 1s).
	TickInterval time.Duration
	// HeartbeatInterval is how often the task stream is pinged (default 10s).
	HeartbeatInterval time.Duration
	// ShutdownGrace bounds the graceful stop (default 10s).
	ShutdownGrace time.Duration
	// MetricsListen, when set, serves /metrics (Prometheus text format),
	// /healthz and /readyz (health.go) over plain HTTP on this address.
	MetricsListen string
	// Rand is the source of each secure job's public seed; nil means
	// crypto/rand. Only simulations set it, to make a run reproducible.
	Rand io.Reader
	// StreamTimeout bounds each send to and each wait on a peer's stream
	// (default 60s): a peer that stops reading or sending loses its own
	// stream and nothing else.
	StreamTimeout time.Duration
	// AuditKey signs the audit log's records and checkpoints; nil means the
	// key in audit-key.pem beside the state database, created on first
	// start.
	AuditKey *audit.Key
	// AuditOrigin names the audit log in its checkpoints (default
	// "concord/audit").
	AuditOrigin string
	// Consortium is the consortium's name in compliance reports (default:
	// AuditOrigin).
	Consortium string
	// AcceptBrokenAuditLog lets the coordinator start on an audit log that
	// fails verification; the override is itself recorded in the log.
	AcceptBrokenAuditLog bool
	// CheckpointInterval is how often a new audit checkpoint is signed and
	// sent to the sites to witness (default 5s).
	CheckpointInterval time.Duration
	// Limits bound every submitted job (coordinator.yaml, limits.*); a zero
	// field means jobspec's default.
	Limits jobspec.Limits
	// MaxConnectionAge, when positive, closes each client connection
	// gracefully (HTTP/2 GOAWAY; calls in flight finish) after about this
	// long, so that clients whose certificates rotate reconnect with their
	// current one before the one the connection was opened with expires.
	// Zero keeps connections open for as long as they are used.
	MaxConnectionAge time.Duration
}

// Identity is a verified caller.
type Identity struct {
	Role   string // site | admin | auditor
	Name   string
	Serial string // of the caller's certificate
}

func (id Identity) String() string { return id.Role + ":" + id.Name }

func identify(ctx context.Context) (Identity, bool) {
	id, ok := pki.IdentityFromContext(ctx)
	if !ok {
		return Identity{}, false
	}
	return Identity{Role: string(id.Role), Name: id.Name, Serial: id.Serial}, true
}

// Coordinator is the running service.
type Coordinator struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	st  *store
	bus *bus
	lis net.Listener
	srv *grpc.Server

	// retrainMu serialises retraining checks, so a version is never
	// retrained twice; it is taken before mu.
	retrainMu sync.Mutex

	mu   sync.Mutex
	jobs map[string]*job
	// tuneBusy marks tuning groups whose next step is being submitted
	// (tune.go).
	tuneBusy map[string]bool
	order    []string // job IDs in submission order
	sessions map[string]*session
	sites    map[string]*siteRecord
	// uploads in progress, so revocation can stop them.
	uploads map[*inflight]struct{}
	// revoked holds the serials found revoked while running.
	revoked map[string]bool

	bg sync.WaitGroup
	// runCtx is Run's context, for background work started by events.
	runCtx context.Context

	metrics    *eventCounts
	metricsLis net.Listener
	// serving is true while the gRPC server runs; auditBroken is the
	// start-up verification's failure that the operator overrode (/readyz).
	serving     atomic.Bool
	auditBroken error
}

// New opens the state database, restores unfinished jobs and starts
// listening (so Addr is valid before Run).
func New(cfg Config) (*Coordinator, error) {
	if cfg.TLS == nil || cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("coordinator needs a TLS config that requires and verifies client certificates: mutual TLS is not optional")
	}
	if cfg.Inventory == nil {
		return nil, errors.New("coordinator needs the certificate inventory (inventory.json from the consortium CA)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 5 * time.Second
	}
	if cfg.AuditOrigin == "" {
		cfg.AuditOrigin = "concord/audit"
	}
	if cfg.Consortium == "" {
		cfg.Consortium = cfg.AuditOrigin
	}
	if cfg.AuditKey == nil {
		k, err := auditKey(filepath.Join(filepath.Dir(cfg.StatePath), "audit-key.pem"))
		if err != nil {
			return nil, err
		}
		cfg.AuditKey = k
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = time.Minute
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	} else {
		cfg.Rand = &lockedReader{r: cfg.Rand}
	}
	st, err := openStore(cfg.StatePath)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, now: cfg.Now, st: st,
		jobs: map[string]*job{}, tuneBusy: map[string]bool{}, sessions: map[string]*session{}, sites: map[string]*siteRecord{},
		uploads: map[*inflight]struct{}{}, revoked: map[string]bool{},
		metrics: &eventCounts{counts: map[string]uint64{}}}
	if c.bus, err = newBus(st, cfg.Logger, cfg.Now, cfg.AuditKey, cfg.AuditOrigin); err != nil {
		st.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if _, err := c.bus.verify(); err != nil {
		if !cfg.AcceptBrokenAuditLog {
			st.Close()
			return nil, fmt.Errorf("the audit log fails verification: %w; the coordinator will not run on it. "+
				"Keep the database for investigation; to run anyway, start with --accept-broken-audit-log (the override is recorded in the log)", err)
		}
		c.log.Error("running on an audit log that fails verification, as the operator asked", "err", err)
		c.auditBroken = err
		c.bus.emit(Event{Kind: EvAuditOverride, Actor: "coordinator", Detail: "started on an audit log that fails verification (--accept-broken-audit-log): " + err.Error()})
	}
	if err := c.loadSites(); err != nil {
		st.Close()
		return nil, err
	}
	if err := c.restoreJobs(); err != nil {
		st.Close()
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	c.lis = lis
	if cfg.MetricsListen != "" {
		if c.metricsLis, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			lis.Close()
			st.Close()
			return nil, fmt.Errorf("metrics listener on %s: %w", cfg.MetricsListen, err)
		}
	}
	authz := pki.NewAuthorizer(cfg.Inventory, Policy()).WithLogger(cfg.Logger)
	c.srv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(c.watchCertificates(cfg.TLS, cfg.Inventory))),
		grpc.ChainUnaryInterceptor(c.recoverUnary, authz.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(c.recoverStream, authz.StreamInterceptor()),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Dead connections are found by pings, not only by TCP time-outs.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, MaxConnectionAge: cfg.MaxConnectionAge}),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.MaxRecvMsgSize(ChunkSize+(1<<16)),
	)
	pb.RegisterAgentServer(c.srv, &agentService{c: c})
	pb.RegisterAdminServer(c.srv, &adminService{c: c})
	return c, nil
}

// Addr is the address the coordinator listens on.
func (c *Coordinator) Addr() net.Addr { return c.lis.Addr() }

// Run serves until ctx is cancelled, then stops gracefully within
// Config.ShutdownGrace and closes the database.
func (c *Coordinator) Run(ctx context.Context) error {
	c.bus.emit(Event{Kind: EvCoordinator, Actor: "coordinator", Detail: fmt.Sprintf("coordinator %s serving on %s", Version, c.lis.Addr())})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.startMetrics(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.resumeWork(ctx)
	c.mu.Unlock()
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.tickLoop(ctx)
	}()
	errc := make(chan error, 1)
	c.serving.Store(true)
	go func() { errc <- c.srv.Serve(c.lis) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	c.serving.Store(false)
	c.mu.Lock()
	for _, s := range c.sessions {
		s.close()
	}
	c.mu.Unlock()
	stopped := make(chan struct{})
	go func() { c.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(c.cfg.ShutdownGrace):
		c.log.Warn("graceful stop timed out; closing connections")
		c.srv.Stop()
	}
	c.bg.Wait()
	if cerr := c.st.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

func (c *Coordinator) tickLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.TickInterval)
	defer t.Stop()
	cp := time.NewTicker(c.cfg.CheckpointInterval)
	defer cp.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.checkRevocations()
			c.tick()
			c.checkRetrain()
		case <-cp.C:
			c.publishCheckpoint()
		}
	}
}

// VerifyAudit checks the audit log (every record's signature, the Merkle
// tree, the latest checkpoint) and returns its size.
func (c *Coordinator) VerifyAudit() (int, error) {
	n, err := c.bus.verify()
	return int(n), err
}

// recoverUnary and recoverStream turn a panic in a handler into an
// Internal error and a log line: one bad request must not stop rounds for
// every hospital. The state machine's state is persisted before actions,
// so a failed handler leaves nothing half-applied on disk.
func (c *Coordinator) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer c.recovered(info.FullMethod, &err)
	return h(ctx, req)
}

func (c *Coordinator) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer c.recovered(info.FullMethod, &err)
	return h(srv, ss)
}

func (c *Coordinator) recovered(method string, err *error) {
	if r := recover(); r != nil {
		c.log.Error("handler panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "internal error in %s; the coordinator logged it", method)
	}
}

// lockedReader makes a caller's random source safe for concurrent jobs.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
