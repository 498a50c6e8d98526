package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// tlsPeerContext is the context grpc gives a handler after a handshake in
// which the client presented kit's certificate.
func tlsPeerContext(t testing.TB, kit Kit) context.Context {
	t.Helper()
	certs, err := parseCertificates(kit.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{certs}}}
	return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{}, AuthInfo: info})
}

func TestAuthorizeRejectsInventoryMismatch(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(dir, "t"); err != nil {
		t.Fatal(err)
	}
	kit, err := Issue(dir, IssueRequest{Role: RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := LoadInventory(filepath.Join(dir, InventoryFile))
	if err != nil {
		t.Fatal(err)
	}
	policy := Policy{"/s.S/": {RoleSite, RoleAdmin}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := tlsPeerContext(t, kit)
	if id, err := NewAuthorizer(inv, policy).WithLogger(quiet).Authorize(ctx, "/s.S/M"); err != nil || id.Name != "st-marys" {
		t.Fatalf("untampered: %+v, %v", id, err)
	}
	// Someone edits the inventory so the serial now reads as an admin's:
	// the certificate's own identity is what counts, and the mismatch is refused.
	inv.Certificates[0].Role = RoleAdmin
	if _, err := NewAuthorizer(inv, policy).WithLogger(quiet).Authorize(ctx, "/s.S/M"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("tampered inventory: %v, want PermissionDenied", err)
	}
}

func TestAuthorizeRejectsCertificateThatExpiredMidConnection(t *testing.T) {
	// TLS checks expiry at the handshake only; a stream opened before the
	// certificate expired must not keep calling after it.
	dir := t.TempDir()
	if err := InitCA(dir, "t"); err != nil {
		t.Fatal(err)
	}
	kit, err := Issue(dir, IssueRequest{Role: RoleSite, Name: "st-marys", Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := LoadInventory(filepath.Join(dir, InventoryFile))
	a := NewAuthorizer(inv, Policy{"/s.S/": {RoleSite}}).WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := tlsPeerContext(t, kit)
	if _, err := a.Authorize(ctx, "/s.S/M"); err != nil {
		t.Fatalf("within validity: %v", err)
	}
	a.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := a.Authorize(ctx, "/s.S/M"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("after expiry: %v, want Unauthenticated", err)
	}
}

// BenchmarkAuthorize measures the per-call cost of authorisation with an
// InventoryWatcher (one stat of the inventory file per call).
func BenchmarkAuthorize(b *testing.B) {
	dir := b.TempDir()
	if err := InitCA(dir, "bench"); err != nil {
		b.Fatal(err)
	}
	var kit Kit
	for i := range 200 { // a consortium of 200 sites
		k, err := Issue(dir, IssueRequest{Role: RoleSite, Name: "site-" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
		if err != nil {
			b.Fatal(err)
		}
		kit = k
	}
	w, err := WatchInventory(filepath.Join(dir, InventoryFile), nil)
	if err != nil {
		b.Fatal(err)
	}
	a := NewAuthorizer(w, Policy{"/concord.v1.Agent/": {RoleSite}, "/concord.v1.Admin/": {RoleAdmin}})
	ctx := tlsPeerContext(b, kit)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authorize(ctx, "/concord.v1.Agent/Upload"); err != nil {
			b.Fatal(err)
		}
	}
}
