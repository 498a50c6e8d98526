package vaultauth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testvault"
	"github.com/concord-fl/concord/internal/vaultauth"
	"github.com/concord-fl/concord/pki"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func login(t *testing.T, v *testvault.Vault, kind, name string, cidrs ...string) *vaultauth.Client {
	t.Helper()
	args := append([]string{kind, name}, cidrs...)
	if kind == "coordinator" {
		args = append([]string{kind, name, "localhost,127.0.0.1"}, cidrs...)
	}
	roleID := v.Run(args...)
	c, err := vaultauth.Dial(context.Background(), vaultauth.Login{Address: v.Addr, RoleID: roleID,
		SecretIDFile: v.SecretIDFile(kind + "-" + name), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestAppRoleSecretIDIsSingleUse logs in once with a secret id, then
// tries the same secret id again.
func TestAppRoleSecretIDIsSingleUse(t *testing.T) {
	v := testvault.Start(t)
	roleID := v.Run("site", "st-marys")
	sid := v.SecretIDFile("site-st-marys")
	l := vaultauth.Login{Address: v.Addr, RoleID: roleID, SecretIDFile: sid, Logger: quiet}
	c, err := vaultauth.Dial(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.API().Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the token from the first login does not work: %v", err)
	}
	_, err = vaultauth.Dial(context.Background(), l)
	if !errors.Is(err, vaultauth.ErrLogin) {
		t.Fatalf("second login with the same secret id: got %v, want ErrLogin", err)
	}
	t.Logf("reuse refused: %v", err)
}

// TestAppRoleCIDRBinding: a role bound to a network the test is not in
// refuses the login; one bound to loopback accepts it.
func TestAppRoleCIDRBinding(t *testing.T) {
	v := testvault.Start(t)
	roleID := v.Run("site", "far-away", "10.99.0.0/16")
	_, err := vaultauth.Dial(context.Background(), vaultauth.Login{Address: v.Addr, RoleID: roleID,
		SecretIDFile: v.SecretIDFile("site-far-away"), Logger: quiet})
	if !errors.Is(err, vaultauth.ErrLogin) {
		t.Fatalf("login from 127.0.0.1 to a role bound to 10.99.0.0/16: got %v, want ErrLogin", err)
	}
	login(t, v, "site", "nearby", "127.0.0.0/8")
}

// TestTokenRenewal gives the token a 10-second period and uses it after
// 25: it lives only if it was renewed (twice).
func TestTokenRenewal(t *testing.T) {
	t.Setenv("CONCORD_TOKEN_PERIOD", "10s")
	v := testvault.Start(t)
	c := login(t, v, "site", "st-marys")
	time.Sleep(25 * time.Second)
	sec, err := c.API().Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("token not renewed: %v", err)
	}
	ttl, _ := sec.TokenTTL()
	if ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("token ttl %v after renewals, want within the 10s period", ttl)
	}
}

// TestCertsHandshakeAndInventory issues a coordinator and a site
// certificate, connects them over mutual TLS, and checks what the
// coordinator's inventory says about the site's serial before and after
// a revocation.
func TestCertsHandshakeAndInventory(t *testing.T) {
	v := testvault.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	coord := login(t, v, "coordinator", "main")
	site := login(t, v, "site", "st-marys")
	var mu sync.Mutex
	var issued []vaultauth.Issued
	cc, err := vaultauth.StartCerts(ctx, coord, vaultauth.CertRequest{Mount: "concord-pki", Role: "coordinator-main",
		Identity: pki.Identity{Role: pki.RoleCoordinator, Name: "main"}, Hosts: []string{"localhost", "127.0.0.1"}, TTL: 2 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := vaultauth.StartCerts(ctx, site, vaultauth.CertRequest{Mount: "concord-pki", Role: "site-st-marys",
		Identity: pki.Identity{Role: pki.RoleSite, Name: "st-marys"}, TTL: 2 * time.Minute}, func(i vaultauth.Issued) {
		mu.Lock()
		issued = append(issued, i)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(issued) != 1 || issued[0].Identity.Name != "st-marys" || issued[0].NotAfter.Sub(issued[0].NotBefore) > 2*time.Minute+time.Minute {
		t.Fatalf("issued %+v", issued)
	}
	if got := time.Until(sc.Current().Leaf.NotAfter); got > 2*time.Minute+5*time.Second || got < time.Minute {
		t.Fatalf("certificate lives %v more, want about 2m", got)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", cc.ServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan pki.Identity, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- pki.Identity{}
			return
		}
		id, _ := pki.IdentityFromCertificate(tc.ConnectionState().VerifiedChains[0][0])
		peer <- id
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), sc.ClientTLS("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	id := <-peer
	if id.Name != "st-marys" || id.Serial != issued[0].Identity.Serial {
		t.Fatalf("server saw %+v, want the site's certificate %s", id, issued[0].Identity.Serial)
	}

	inv := vaultauth.NewInventory(coord, "concord-pki", nil, time.Millisecond)
	var reported []pki.Entry
	inv.ReportNewCertificates(func(e pki.Entry) { reported = append(reported, e) })
	for range 2 {
		e, err := inv.Lookup(id.Serial)
		if err != nil || e.Role != pki.RoleSite || e.Name != "st-marys" || e.Revoked {
			t.Fatalf("lookup %s: %+v, %v", id.Serial, e, err)
		}
	}
	if len(reported) != 1 || reported[0].Serial != id.Serial {
		t.Fatalf("reported %+v, want the serial once", reported)
	}
	if _, err := inv.Lookup("abcdef"); !errors.Is(err, pki.ErrNotFound) {
		t.Fatalf("unknown serial: %v, want ErrNotFound", err)
	}
	vs, err := vaultauth.VaultSerial(id.Serial)
	if err != nil {
		t.Fatal(err)
	}
	v.Run("revoke", vs)
	time.Sleep(5 * time.Millisecond)
	if e, err := inv.Lookup(id.Serial); err != nil || !e.Revoked {
		t.Fatalf("after revocation: %+v, %v", e, err)
	}
}

// TestPKIRoleRefusesAnotherName: site st-marys's role cannot get a
// certificate naming another site.
func TestPKIRoleRefusesAnotherName(t *testing.T) {
	v := testvault.Start(t)
	c := login(t, v, "site", "st-marys")
	v.Run("site", "st-johns")
	for _, req := range []vaultauth.CertRequest{
		{Mount: "concord-pki", Role: "site-st-marys", Identity: pki.Identity{Role: pki.RoleSite, Name: "st-johns"}, TTL: time.Hour},
		{Mount: "concord-pki", Role: "site-st-johns", Identity: pki.Identity{Role: pki.RoleSite, Name: "st-johns"}, TTL: time.Hour},
	} {
		if _, err := vaultauth.StartCerts(context.Background(), c, req, nil); err == nil {
			t.Fatalf("%s got a certificate for %s with role %s", "st-marys", req.Identity, req.Role)
		}
	}
}

// TestKV stores and replaces a secret, and keeps one site out of
// another's secrets.
func TestKV(t *testing.T) {
	v := testvault.Start(t)
	ctx := context.Background()
	a := login(t, v, "site", "st-marys")
	b := login(t, v, "site", "st-johns")
	kv, err := vaultauth.NewKV(a, "concord-kv", "sites/st-marys")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "he-job-1"); !errors.Is(err, vaultauth.ErrNoSecret) {
		t.Fatalf("missing secret: %v, want ErrNoSecret", err)
	}
	secret := []byte{0, 1, 2, 255}
	if err := kv.Put(ctx, "he-job-1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(ctx, "he-job-1", secret); err != nil {
		t.Fatal(err)
	}
	got, ok, err := kv.Lookup(ctx, "he-job-1")
	if err != nil || !ok || string(got) != string(secret) {
		t.Fatalf("got %v, %v, %v", got, ok, err)
	}
	if _, ok, err := kv.Lookup(ctx, "he-job-2"); ok || err != nil {
		t.Fatalf("missing secret: %v, %v", ok, err)
	}
	other, _ := vaultauth.NewKV(b, "concord-kv", "sites/st-marys")
	if _, err := other.Get(ctx, "he-job-1"); err == nil || errors.Is(err, vaultauth.ErrNoSecret) {
		t.Fatalf("st-johns reading st-marys's secret: %v, want permission denied", err)
	}
}

func TestLoginValidate(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, l := range []vaultauth.Login{
		{},
		{Address: "vault:8200", RoleID: "r", SecretIDFile: "f"},
		{Address: "https://v:8200", SecretIDFile: "f"},
		{Address: "https://v:8200", RoleID: "r"},
		{Address: "https://v:8200", RoleID: "r", SecretIDFile: empty},
		{Address: "https://v:8200", RoleID: "r", SecretIDFile: filepath.Join(dir, "missing")},
	} {
		if _, err := vaultauth.Dial(context.Background(), l); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

func TestVaultSerial(t *testing.T) {
	for in, want := range map[string]string{"1": "01", "abc": "0a:bc", "1a2b3c": "1a:2b:3c"} {
		if got, err := vaultauth.VaultSerial(in); err != nil || got != want {
			t.Errorf("VaultSerial(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "xyz", "0", "-1", "1:2"} {
		if _, err := vaultauth.VaultSerial(bad); err == nil {
			t.Errorf("VaultSerial(%q) accepted", bad)
		}
	}
}
