// Package sim runs a whole Concord federation on one machine: a
// coordinator and N site agents in one process, talking real gRPC over
// loopback TCP with mutual TLS from a throwaway consortium CA, each site
// with its own data (synthetic hospitals, generated CT hospitals with
// organ masks for segmentation, or a partition of a MedMNIST set). It is what `concord-sim` and `make demo` run, and the harness of
// the end-to-end tests. Only binaries and tests import it.
package sim

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/concord-fl/concord/coordinator"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// Federation is a running one-machine consortium.
type Federation struct {
	Dir   string
	CADir string
	Log   *slog.Logger
	// AcceptBrokenAuditLog is passed to the coordinator at its next start.
	AcceptBrokenAuditLog bool

	coordTLS  *tls.Config
	inventory pki.InventorySource
	// maxConnAge is the coordinator's MaxConnectionAge (rotating
	// certificates); zero: none.
	maxConnAge time.Duration
	addr       string
	statePath  string
	coordStop  context.CancelFunc
	coordDone  chan error
	coord      *coordinator.Coordinator

	adminConn *grpc.ClientConn
	Admin     pb.AdminClient

	mu     sync.Mutex
	agents map[string]*agentProc
	tls    map[string]*tls.Config
	seed   int64
}

// seededRand is a deterministic stream for (seed, purpose), or nil for
// crypto/rand when the federation has no seed.
func (f *Federation) seededRand(purpose string) io.Reader {
	if f.seed == 0 {
		return nil
	}
	var key [32]byte
	h := sha256.Sum256([]byte(fmt.Sprintf("concord-sim/%d/%s", f.seed, purpose)))
	copy(key[:], h[:])
	return rand.NewChaCha8(key)
}

type agentProc struct {
	cancel context.CancelFunc
	done   chan struct{}
	agent  *siteagent.Agent
}

// Options configure a federation.
type Options struct {
	Dir    string
	Logger *slog.Logger
	// Tick is the coordinator's deadline granularity (default 100ms).
	Tick time.Duration
	// Seed, when non-zero, makes the randomness that shapes the model
	// reproducible: each secure job's public seed and each site's keys
	// (and so the encryption noise). Zero means crypto/rand, as deployed.
	Seed int64
}

// Start creates a consortium CA in dir, issues certificates for the
// coordinator and an admin, and starts the coordinator on a free loopback
// port. Sites are added with AddSite.
// auditOrigin names the simulated consortium's audit log.
const auditOrigin = "concord.sim/audit"

func Start(opts Options) (*Federation, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Tick <= 0 {
		opts.Tick = 100 * time.Millisecond
	}
	f := &Federation{Dir: opts.Dir, seed: opts.Seed, CADir: filepath.Join(opts.Dir, "ca"), Log: opts.Logger, agents: map[string]*agentProc{}, tls: map[string]*tls.Config{},
		statePath: filepath.Join(opts.Dir, "coordinator.db")}
	if _, err := os.Stat(filepath.Join(f.CADir, pki.CACertFile)); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, err
		}
		if err := pki.InitCA(f.CADir, "Concord simulation CA"); err != nil {
			return nil, fmt.Errorf("create simulation CA: %w", err)
		}
	}
	kit, err := pki.Issue(f.CADir, pki.IssueRequest{Role: pki.RoleCoordinator, Name: "coordinator", Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		return nil, err
	}
	if f.coordTLS, err = pki.ServerTLS(kit.CAPEM, kit.CertPEM, kit.KeyPEM); err != nil {
		return nil, err
	}
	if f.inventory, err = pki.WatchInventory(filepath.Join(f.CADir, pki.InventoryFile), opts.Logger); err != nil {
		return nil, err
	}
	if err := f.StartCoordinator("127.0.0.1:0", opts.Tick); err != nil {
		return nil, err
	}
	admin, err := pki.Issue(f.CADir, pki.IssueRequest{Role: pki.RoleAdmin, Name: "sim-admin"})
	if err != nil {
		return nil, err
	}
	f.adminConn, err = f.dial(admin)
	if err != nil {
		return nil, err
	}
	f.Admin = pb.NewAdminClient(f.adminConn)
	return f, nil
}

// StartCoordinator (re)starts the coordinator on addr with the federation's
// state database.
func (f *Federation) StartCoordinator(addr string, tick time.Duration) error {
	c, err := coordinator.New(coordinator.Config{Listen: addr, TLS: f.coordTLS, Inventory: f.inventory,
		StatePath: f.statePath, Logger: f.Log.With("component", "coordinator"), TickInterval: tick, HeartbeatInterval: 2 * time.Second,
		ShutdownGrace: 2 * time.Second, MetricsListen: "127.0.0.1:0", Rand: f.seededRand("coordinator"),
		CheckpointInterval: 300 * time.Millisecond, AcceptBrokenAuditLog: f.AcceptBrokenAuditLog,
		Consortium: "Concord simulation", AuditOrigin: auditOrigin, MaxConnectionAge: f.maxConnAge})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.coord, f.coordStop, f.coordDone = c, cancel, make(chan error, 1)
	f.addr = c.Addr().String()
	go func() { f.coordDone <- c.Run(ctx) }()
	return nil
}

// StopCoordinator stops the coordinator and waits for it.
func (f *Federation) StopCoordinator() error {
	if f.coordStop == nil {
		return nil
	}
	f.coordStop()
	err := <-f.coordDone
	f.coordStop = nil
	return err
}

// Coordinator returns the running coordinator.
func (f *Federation) Coordinator() *coordinator.Coordinator { return f.coord }

// Addr is the coordinator's address.
func (f *Federation) Addr() string { return f.addr }

// Kit issues a certificate in the federation's CA.
func (f *Federation) Kit(role pki.Role, name string) (pki.Kit, error) {
	return pki.Issue(f.CADir, pki.IssueRequest{Role: role, Name: name})
}

func (f *Federation) dial(kit pki.Kit) (*grpc.ClientConn, error) {
	tc, err := pki.ClientTLS(kit.CAPEM, kit.CertPEM, kit.KeyPEM, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
}

// Dial connects to the coordinator with kit's certificate.
func (f *Federation) Dial(kit pki.Kit) (*grpc.ClientConn, error) { return f.dial(kit) }

// SiteOptions configure one simulated site.
type SiteOptions struct {
	Data    siteagent.DataSource
	Trainer siteagent.Trainer
	// Proxy, when set, is the HTTP proxy the agent must go through.
	Proxy *url.URL
	// Privacy is the site's differential privacy policy (agent.yaml
	// privacy:); zero: no budget, so the site takes no DP job.
	Privacy siteagent.PrivacyPolicy
	// Drift watches a folder of arriving images (agent.yaml drift:).
	Drift siteagent.DriftConfig
	// MetricsListen is the agent's management listener (agent.yaml
	// metrics_listen), e.g. 127.0.0.1:0; empty: none.
	MetricsListen string
	// Secrets, when set, keeps the site's keys there (e.g. Vault KV)
	// instead of sealed under a passphrase in its state.
	Secrets siteagent.SecretStore
}

// AddSite issues a certificate for a site and starts its agent.
func (f *Federation) AddSite(name string, o SiteOptions) error {
	kit, err := f.Kit(pki.RoleSite, name)
	if err != nil {
		return err
	}
	tc, err := pki.ClientTLS(kit.CAPEM, kit.CertPEM, kit.KeyPEM, "127.0.0.1")
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.tls[name] = tc
	f.mu.Unlock()
	return f.StartAgent(name, tc, o)
}

// RestartSite starts a stopped site's agent again with its certificate and
// state directory (a hospital's agent coming back after a crash).
func (f *Federation) RestartSite(name string, o SiteOptions) error {
	f.mu.Lock()
	tc := f.tls[name]
	f.mu.Unlock()
	if tc == nil {
		return fmt.Errorf("site %s was never added", name)
	}
	return f.StartAgent(name, tc, o)
}

// StartAgent (re)starts a site's agent with its state directory.
func (f *Federation) StartAgent(name string, tc *tls.Config, o SiteOptions) error {
	pass := []byte("sim-" + name)
	if o.Secrets != nil {
		pass = nil
	}
	a, err := siteagent.New(siteagent.Config{Coordinator: f.addr, TLS: tc, StateDir: filepath.Join(f.Dir, "sites", name),
		Data: o.Data, Trainer: o.Trainer, Proxy: o.Proxy, Privacy: o.Privacy, Drift: o.Drift, KeyRand: f.seededRand("site/" + name), KeyPassphrase: pass, Secrets: o.Secrets, Logger: f.Log.With("site", name),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, MetricsListen: o.MetricsListen})
	if err != nil {
		return fmt.Errorf("site %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &agentProc{cancel: cancel, done: make(chan struct{}), agent: a}
	go func() {
		defer close(p.done)
		_ = a.Run(ctx)
	}()
	f.mu.Lock()
	f.agents[name] = p
	f.mu.Unlock()
	return nil
}

// Agent returns a running site's agent, or nil.
func (f *Federation) Agent(name string) *siteagent.Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.agents[name]; p != nil {
		return p.agent
	}
	return nil
}

// StopSite stops a site's agent (a hospital going offline).
func (f *Federation) StopSite(name string) {
	f.mu.Lock()
	p := f.agents[name]
	delete(f.agents, name)
	f.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

// crashSite cancels a site's agent without waiting for it to stop: called
// from inside the agent (a trainer), it takes effect before the agent's
// next network call, like a process killed at that point.
func (f *Federation) crashSite(name string) {
	f.mu.Lock()
	p := f.agents[name]
	f.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// WaitSites waits until n sites are connected.
func (f *Federation) WaitSites(ctx context.Context, n int) error {
	for {
		resp, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
		if err == nil {
			connected := 0
			for _, s := range resp.Sites {
				if s.Connected {
					connected++
				}
			}
			if connected >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d sites to connect: %w", n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops every agent and the coordinator.
func (f *Federation) Close() error {
	f.mu.Lock()
	names := make([]string, 0, len(f.agents))
	for n := range f.agents {
		names = append(names, n)
	}
	f.mu.Unlock()
	for _, n := range names {
		f.StopSite(n)
	}
	if f.adminConn != nil {
		f.adminConn.Close()
	}
	return f.StopCoordinator()
}

// StatePath is the coordinator's database file.
func (f *Federation) StatePath() string { return f.statePath }
