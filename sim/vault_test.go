package sim

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/concord-fl/concord/internal/testvault"
	"github.com/concord-fl/concord/internal/vaultauth"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// vaultFederation is a federation whose every certificate comes from a
// real Vault's PKI (set up by deploy/vault/setup.sh) through AppRole
// logins, renewed at 2/3 of ttl.
type vaultFederation struct {
	*Federation
	v   *testvault.Vault
	ctx context.Context
	ttl time.Duration
	log *warnLog

	mu      sync.Mutex
	serials map[string][]string // identity -> serials issued, in order
}

// warnLog keeps every record at Warn or above, and passes all on to the
// test's log when -v.
type warnLog struct {
	next slog.Handler
	mu   sync.Mutex
	recs []string
}

func (w *warnLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		w.mu.Lock()
		w.recs = append(w.recs, b.String())
		w.mu.Unlock()
	}
	if w.next != nil && w.next.Enabled(ctx, r.Level) {
		return w.next.Handle(ctx, r)
	}
	return nil
}
func (w *warnLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{w: w, attrs: as}
}
func (w *warnLog) WithGroup(string) slog.Handler { return w }

type attrHandler struct {
	w     *warnLog
	attrs []slog.Attr
}

func (h *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.attrs...)
	return h.w.Handle(ctx, r)
}
func (h *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *attrHandler) WithGroup(string) slog.Handler { return h }

func (w *warnLog) records() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.recs...)
}

func startVaultFederation(t *testing.T, ttl time.Duration) *vaultFederation {
	t.Helper()
	v := testvault.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // after the federation stops, before Vault does
	wl := &warnLog{}
	if l := testLogger(t); l != nil {
		wl.next = l.Handler()
	}
	logger := slog.New(wl)
	vf := &vaultFederation{v: v, ctx: ctx, ttl: ttl, log: wl, serials: map[string][]string{}}
	coord := vf.certs(t, pki.RoleCoordinator, "main")
	dir := t.TempDir()
	vc := vf.login(t, "coordinator", "main")
	f := &Federation{Dir: dir, Log: logger, agents: map[string]*agentProc{}, tls: map[string]*tls.Config{},
		statePath: filepath.Join(dir, "coordinator.db"), coordTLS: coord.ServerTLS(),
		inventory: vaultauth.NewInventory(vc, "concord-pki", nil, 0), maxConnAge: vaultauth.MaxConnectionAge(ttl)}
	if err := f.StartCoordinator("127.0.0.1:0", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	admin := vf.certs(t, pki.RoleAdmin, "sim-admin")
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(admin.ClientTLS("127.0.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	f.adminConn, f.Admin = conn, pb.NewAdminClient(conn)
	vf.Federation = f
	return vf
}

// login creates the AppRole role of kind/name (deploy/vault/setup.sh) if
// needed and logs in with a fresh single-use secret id.
func (vf *vaultFederation) login(t *testing.T, kind, name string) *vaultauth.Client {
	t.Helper()
	args := []string{kind, name}
	if kind == "coordinator" {
		args = append(args, "localhost,127.0.0.1")
	}
	roleID := vf.v.Run(args...)
	c, err := vaultauth.Dial(vf.ctx, vaultauth.Login{Address: vf.v.Addr, RoleID: roleID,
		SecretIDFile: vf.v.SecretIDFile(kind + "-" + name), Logger: vf.Log()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Log is the federation's logger, before the federation exists too.
func (vf *vaultFederation) Log() *slog.Logger { return slog.New(vf.log) }

func (vf *vaultFederation) certs(t *testing.T, role pki.Role, name string) *vaultauth.Certs {
	t.Helper()
	vc := vf.login(t, string(role), name)
	return vf.certsWith(t, vc, role, name)
}

func (vf *vaultFederation) certsWith(t *testing.T, vc *vaultauth.Client, role pki.Role, name string) *vaultauth.Certs {
	t.Helper()
	req := vaultauth.CertRequest{Mount: "concord-pki", Role: string(role) + "-" + name,
		Identity: pki.Identity{Role: role, Name: name}, TTL: vf.ttl}
	if role == pki.RoleCoordinator {
		req.Hosts = []string{"127.0.0.1", "localhost"}
	}
	c, err := vaultauth.StartCerts(vf.ctx, vc, req, func(i vaultauth.Issued) {
		vf.mu.Lock()
		vf.serials[i.Identity.String()] = append(vf.serials[i.Identity.String()], i.Identity.Serial)
		vf.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// addSite starts a site whose certificates and (with kv) keys come from
// Vault.
func (vf *vaultFederation) addSite(t *testing.T, name string, o SiteOptions, kv bool) {
	t.Helper()
	vc := vf.login(t, "site", name)
	c := vf.certsWith(t, vc, pki.RoleSite, name)
	if kv {
		store, err := vaultauth.NewKV(vc, "concord-kv", "sites/"+name)
		if err != nil {
			t.Fatal(err)
		}
		o.Secrets = store
	}
	if err := vf.StartAgent(name, c.ClientTLS("127.0.0.1"), o); err != nil {
		t.Fatal(err)
	}
}

func (vf *vaultFederation) issued(id string) []string {
	vf.mu.Lock()
	defer vf.mu.Unlock()
	return append([]string(nil), vf.serials[id]...)
}

// pacedTrainer takes pace per round, so that a job lasts as long as the
// test needs while the CPU stays free.
type pacedTrainer struct {
	fixedTrainer
	pace time.Duration
}

func (p pacedTrainer) Train(ctx context.Context, req siteagent.TrainRequest) (siteagent.TrainResult, error) {
	select {
	case <-ctx.Done():
		return siteagent.TrainResult{}, ctx.Err()
	case <-time.After(p.pace):
	}
	return p.fixedTrainer.Train(ctx, req)
}

// TestVaultCertificatesRotateDuringJob runs a federated job for 5 minutes
// (10 with CONCORD_VAULT_LONG=1) while every certificate, the
// coordinator's, the admin's and three sites', lives 2 minutes and is
// renewed at 2/3 of that. Every round gets every site's update, no call is
// refused, the admin's watch stream outlives several of its certificates,
// each site shows at least three distinct serials, and the coordinator's
// audit log records each serial it met.
func TestVaultCertificatesRotateDuringJob(t *testing.T) {
	if testing.Short() {
		t.Skip("a five-minute federated job")
	}
	dur := 5 * time.Minute
	if os.Getenv("CONCORD_VAULT_LONG") != "" {
		dur = 10 * time.Minute
	}
	const ttl = 2 * time.Minute
	vf := startVaultFederation(t, ttl)
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	sites := []string{"st-marys", "st-johns", "royal-free"}
	const pace = 4 * time.Second
	for i, name := range sites {
		vf.addSite(t, name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(12, uint64(i))},
			Trainer: pacedTrainer{fixedTrainer: fixedTrainer{site: i}, pace: pace}}, false)
	}
	if err := vf.WaitSites(ctx, len(sites)); err != nil {
		t.Fatal(err)
	}
	rounds := int(dur / pace)
	spec := testSpec(t, fmt.Sprintf("name: rotation\nrounds: %d\nmin_sites: %d\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n", rounds, len(sites)))
	start := time.Now()
	job, err := vf.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	// One watch stream for the whole job: it must outlive the admin's
	// certificates and the coordinator's.
	stream, err := vf.Admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: job.Id})
	if err != nil {
		t.Fatal(err)
	}
	polls, pollDone := 0, make(chan struct{})
	go func() { // unary calls all along, on whatever connection is current
		defer close(pollDone)
		for ctx.Err() == nil {
			if _, err := vf.Admin.ListSites(ctx, &pb.ListSitesRequest{}); err != nil && ctx.Err() == nil {
				t.Errorf("ListSites at %v: %v", time.Since(start).Round(time.Second), err)
			}
			polls++
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Second):
			}
		}
	}()
	var last *pb.Job
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("watch stream broke after %v: %v", time.Since(start).Round(time.Second), err)
		}
		last = ev.Job
	}
	elapsed := time.Since(start)
	cancel()
	<-pollDone
	if last == nil || last.State != "completed" {
		t.Fatalf("job ended %v", last)
	}
	if len(last.Rounds) != rounds {
		t.Fatalf("%d rounds recorded, want %d", len(last.Rounds), rounds)
	}
	for _, r := range last.Rounds {
		if len(r.Contributors) != len(sites) {
			t.Fatalf("round %d had contributors %v, want all %d sites", r.Round, r.Contributors, len(sites))
		}
	}
	for _, rec := range vf.log.records() {
		if strings.Contains(rec, "call refused") || strings.HasPrefix(rec, "ERROR") || strings.Contains(rec, "renewal failed") {
			t.Errorf("log: %s", rec)
		}
	}
	var events []*pb.JobEvent
	for token := ""; ; {
		page, err := vf.Admin.ListEvents(context.Background(), &pb.ListEventsRequest{PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, page.Events...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	audited := map[string]map[string]bool{}
	for _, e := range events {
		if e.Kind != "certificate.seen" {
			continue
		}
		for id := range vf.serials {
			for _, s := range vf.issued(id) {
				if strings.Contains(e.Detail, "certificate "+s+" of "+id+" ") {
					if audited[id] == nil {
						audited[id] = map[string]bool{}
					}
					audited[id][s] = true
				}
			}
		}
	}
	t.Logf("job of %d rounds in %v; %d admin polls; serials issued/audited:", rounds, elapsed.Round(time.Second), polls)
	for _, id := range append([]string{"coordinator/main", "admin/sim-admin"}, prefixed("site/", sites)...) {
		t.Logf("  %-18s %d issued, %d in the audit log", id, len(vf.issued(id)), len(audited[id]))
	}
	for _, name := range sites {
		id := "site/" + name
		if n := len(audited[id]); n < 3 {
			t.Errorf("%s: %d distinct serials in the coordinator's audit log (issued %v), want at least 3", id, n, vf.issued(id))
		}
	}
	if n := len(audited["coordinator/main"]); n < 3 {
		t.Errorf("coordinator: %d of its own serials in the audit log, want at least 3", n)
	}
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// TestVaultKeyShareSurvivesRestart keeps two sites' HE keys in Vault KV v2
// and restarts one of them between key setup and decryption, with a new
// AppRole login (the first secret id is spent): the restarted agent finds
// its key share in Vault, and the job completes.
func TestVaultKeyShareSurvivesRestart(t *testing.T) {
	vf := startVaultFederation(t, 10*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sites := []string{"st-marys", "st-johns"}
	opts := func(i int) SiteOptions {
		return SiteOptions{Data: siteagent.MemoryData{Data: blobs(10, uint64(i))}, Trainer: fixedTrainer{site: i}}
	}
	for i, name := range sites {
		vf.addSite(t, name, opts(i), true)
	}
	if err := vf.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: vault-keys\nrounds: 2\nmin_sites: 2\nround_deadline: 90s\nstraggler_cutoff: 90s\nprivacy: {secure_aggregation: mhe, threshold: 2}\nseed: 5\n")
	job, err := vf.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := vf.Admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: job.Id})
	if err != nil {
		t.Fatal(err)
	}
	var last *pb.Job
	restarted := false
	for {
		ev, err := stream.Recv()
		if err != nil {
			break
		}
		last = ev.Job
		if ev.Kind == "key.combined" && !restarted {
			restarted = true
			vf.StopSite("st-marys")
			vf.addSite(t, "st-marys", opts(0), true)
		}
	}
	if !restarted {
		t.Fatal("the key setup never completed; nothing was restarted")
	}
	if last == nil || last.State != "completed" {
		t.Fatalf("job ended %v", last)
	}
	// The key material is in Vault, not in the agent's state.
	kvc := vf.login(t, "site", "st-marys")
	kv, _ := vaultauth.NewKV(kvc, "concord-kv", "sites/st-marys")
	for _, name := range []string{"seal-key", "witness-key", "he-" + job.Id} {
		if _, ok, err := kv.Lookup(ctx, name); err != nil || !ok {
			t.Errorf("vault kv sites/st-marys/%s: found %v, %v", name, ok, err)
		}
	}
}
