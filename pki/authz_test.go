package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// countingHealth is grpc's real health service, recording who reached it.
type countingHealth struct {
	*health.Server
	mu    sync.Mutex
	calls []Identity
}

func (c *countingHealth) record(ctx context.Context) {
	id, ok := IdentityFromContext(ctx)
	if !ok {
		id = Identity{Name: "<no identity in context>"}
	}
	c.mu.Lock()
	c.calls = append(c.calls, id)
	c.mu.Unlock()
}

func (c *countingHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	c.record(ctx)
	return c.Server.Check(ctx, req)
}

func (c *countingHealth) Watch(req *healthpb.HealthCheckRequest, s healthpb.Health_WatchServer) error {
	c.record(s.Context())
	return c.Server.Watch(req, s)
}

func (c *countingHealth) List(ctx context.Context, req *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	c.record(ctx)
	return c.Server.List(ctx, req)
}

func (c *countingHealth) take() []Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

// consortium is a CA with issued kits and a coordinator serving health
// checks over real TCP + mutual TLS.
type consortium struct {
	caDir  string
	addr   string
	caPEM  []byte
	health *countingHealth
	kits   map[string]Kit
}

func newConsortium(t *testing.T) *consortium {
	t.Helper()
	c := &consortium{caDir: t.TempDir(), kits: map[string]Kit{}}
	if err := InitCA(c.caDir, "test consortium"); err != nil {
		t.Fatal(err)
	}
	mustIssue := func(key string, req IssueRequest, now time.Time) {
		t.Helper()
		kit, err := issue(c.caDir, req, now)
		if err != nil {
			t.Fatalf("issue %s: %v", key, err)
		}
		c.kits[key] = kit
	}
	now := time.Now()
	mustIssue("coordinator", IssueRequest{Role: RoleCoordinator, Name: "coordinator", Hosts: []string{"127.0.0.1", "localhost"}}, now)
	mustIssue("site", IssueRequest{Role: RoleSite, Name: "st-marys"}, now)
	mustIssue("admin", IssueRequest{Role: RoleAdmin, Name: "alice"}, now)
	mustIssue("revoked", IssueRequest{Role: RoleSite, Name: "old-site"}, now)
	mustIssue("expired", IssueRequest{Role: RoleSite, Name: "lapsed", Validity: 365 * 24 * time.Hour}, now.Add(-2*365*24*time.Hour))
	if err := Revoke(c.caDir, RoleSite, "old-site"); err != nil {
		t.Fatal(err)
	}

	// Another consortium's CA.
	other := t.TempDir()
	if err := InitCA(other, "someone else"); err != nil {
		t.Fatal(err)
	}
	kit, err := Issue(other, IssueRequest{Role: RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	c.kits["other-ca"] = kit

	// Our CA's key, but an inventory that never recorded the certificate
	// (a CA backup used behind the admin's back).
	rogue := t.TempDir()
	for _, f := range []string{CACertFile, CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(c.caDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rogue, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := (&Inventory{}).save(filepath.Join(rogue, InventoryFile)); err != nil {
		t.Fatal(err)
	}
	if c.kits["unknown"], err = Issue(rogue, IssueRequest{Role: RoleSite, Name: "unknown-site"}); err != nil {
		t.Fatal(err)
	}
	c.kits["no-uri"] = signWithoutIdentity(t, c.caDir)
	c.caPEM = c.kits["coordinator"].CAPEM

	watcher, err := WatchInventory(filepath.Join(c.caDir, InventoryFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := Policy{
		"/grpc.health.v1.Health/Check": {RoleSite, RoleAdmin},
		"/grpc.health.v1.Health/Watch": {RoleAdmin},
		// List is in no entry: denied to everyone.
	}
	if err := policy.Validate(); err != nil {
		t.Fatal(err)
	}
	authz := NewAuthorizer(watcher, policy)
	co := c.kits["coordinator"]
	serverTLS, err := ServerTLS(co.CAPEM, co.CertPEM, co.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)),
		grpc.UnaryInterceptor(authz.UnaryInterceptor()), grpc.StreamInterceptor(authz.StreamInterceptor()))
	c.health = &countingHealth{Server: health.NewServer()}
	healthpb.RegisterHealthServer(srv, c.health)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = lis.Addr().String()
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return c
}

// signWithoutIdentity makes a client certificate from the consortium CA
// that lacks the concord:// URI SAN.
func signWithoutIdentity(t *testing.T, caDir string) Kit {
	t.Helper()
	ca, err := loadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := newSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "st-marys"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := encodeKey(key)
	return Kit{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: keyPEM, CAPEM: ca.certPEM}
}

// dial connects with a hand-built TLS config, so that expired and foreign
// certificates can be presented (ClientTLS refuses them up front).
func (c *consortium) dial(t *testing.T, kit *Kit) healthpb.HealthClient {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.caPEM) {
		t.Fatal("bad CA PEM")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"}
	if kit != nil {
		cert, err := tls.X509KeyPair(kit.CertPEM, kit.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func callCheck(client healthpb.HealthClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestAuthorizerOverRealGRPC(t *testing.T) {
	c := newConsortium(t)
	tests := []struct {
		name     string
		kit      string // "" = no client certificate
		want     codes.Code
		tlsLevel bool // refused in the handshake: any error, Unavailable expected
	}{
		{"valid site", "site", codes.OK, false},
		{"valid admin", "admin", codes.OK, false},
		{"no certificate", "", codes.Unavailable, true},
		{"certificate from another CA", "other-ca", codes.Unavailable, true},
		{"expired certificate", "expired", codes.Unavailable, true},
		{"unknown site (our CA, not in inventory)", "unknown", codes.PermissionDenied, false},
		{"revoked site", "revoked", codes.PermissionDenied, false},
		{"our CA but no concord identity", "no-uri", codes.Unauthenticated, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var kit *Kit
			if tc.kit != "" {
				k := c.kits[tc.kit]
				kit = &k
			}
			err := callCheck(c.dial(t, kit))
			got := status.Code(err)
			reached := c.health.take()
			if tc.want == codes.OK {
				if err != nil {
					t.Fatalf("call failed: %v", err)
				}
				k := c.kits[tc.kit]
				want := Identity{Role: k.Role, Name: k.Name, Serial: k.Serial}
				if len(reached) != 1 || reached[0] != want {
					t.Fatalf("handler saw %v, want [%v]", reached, want)
				}
				return
			}
			if err == nil {
				t.Fatal("call succeeded")
			}
			if len(reached) != 0 {
				t.Fatalf("handler ran for %v", reached)
			}
			if tc.tlsLevel {
				// The handshake fails; grpc reports a transport error.
				t.Logf("client sees %s: %v", got, err)
				if got != codes.Unavailable {
					t.Errorf("code = %s, want Unavailable (TLS failure)", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("code = %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestAuthorizerPolicy(t *testing.T) {
	c := newConsortium(t)
	site, admin := c.kits["site"], c.kits["admin"]
	watch := func(client healthpb.HealthClient) (codes.Code, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return status.Code(err), err
		}
		_, err = stream.Recv()
		return status.Code(err), err
	}
	if code, err := watch(c.dial(t, &admin)); code != codes.OK {
		t.Errorf("admin Watch: %v", err)
	}
	if got := c.health.take(); len(got) != 1 || got[0].Role != RoleAdmin {
		t.Errorf("admin Watch reached handler as %v", got)
	}
	if code, err := watch(c.dial(t, &site)); code != codes.PermissionDenied {
		t.Errorf("site calling admin-only Watch: %v, want PermissionDenied", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.dial(t, &admin).List(ctx, &healthpb.HealthListRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("admin calling a method missing from the policy: %v, want PermissionDenied", err)
	}
	if got := c.health.take(); len(got) != 0 {
		t.Errorf("denied calls reached the handler: %v", got)
	}
}

func TestRevocationTakesEffectWithoutRestart(t *testing.T) {
	c := newConsortium(t)
	site := c.kits["site"]
	client := c.dial(t, &site)
	if err := callCheck(client); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	if err := Revoke(c.caDir, RoleSite, "st-marys"); err != nil {
		t.Fatal(err)
	}
	// Same connection: the TLS session is still up; the inventory says no.
	if err := callCheck(client); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("after revocation: %v, want PermissionDenied", err)
	}
	// A fail-closed inventory: when the file is broken, nobody gets in.
	admin := c.kits["admin"]
	if err := os.WriteFile(filepath.Join(c.caDir, InventoryFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := callCheck(c.dial(t, &admin)); status.Code(err) != codes.Unavailable {
		t.Fatalf("with a broken inventory: %v, want Unavailable", err)
	}
	if got := c.health.take(); len(got) != 1 {
		t.Errorf("handler calls = %v, want only the first", got)
	}
}

func TestPolicyMatching(t *testing.T) {
	p := Policy{
		"/concord.v1.Agent/":            {RoleSite},
		"/concord.v1.Admin/":            {RoleAdmin, RoleAuditor},
		"/concord.v1.Admin/SubmitJob":   {RoleAdmin},
		"/concord.v1.AdminExtra/Method": {RoleAuditor},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method string
		want   []Role
		found  bool
	}{
		{"/concord.v1.Agent/Connect", []Role{RoleSite}, true},
		{"/concord.v1.Admin/SubmitJob", []Role{RoleAdmin}, true},
		{"/concord.v1.Admin/ListJobs", []Role{RoleAdmin, RoleAuditor}, true},
		{"/concord.v1.AdminExtra/Other", nil, false}, // "/concord.v1.Admin/" is not its prefix
		{"/other.Service/Method", nil, false},
	}
	for _, tc := range tests {
		got, found := p.allowed(tc.method)
		if found != tc.found || len(got) != len(tc.want) {
			t.Errorf("%s: %v %v, want %v %v", tc.method, got, found, tc.want, tc.found)
		}
	}
	for _, bad := range []Policy{{"concord.v1.Agent/": {RoleSite}}, {"/a/b/c": {RoleSite}}, {"/a/": {"root"}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted %v", bad)
		}
	}
}

func TestAuthorizeWithoutTLSPeer(t *testing.T) {
	a := NewAuthorizer(&Inventory{}, Policy{"/s.S/": {RoleSite}})
	_, err := a.Authorize(context.Background(), "/s.S/M")
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("no peer: %v, want Unauthenticated", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Error("status error should not wrap inventory errors")
	}
}
