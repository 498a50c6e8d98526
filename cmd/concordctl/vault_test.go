package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testvault"
	"github.com/concord-fl/concord/pki"
)

// TestClientTLSFromVault: a concordctl.yaml with vault.pki gets an admin
// certificate for the named admin from a real Vault.
func TestClientTLSFromVault(t *testing.T) {
	v := testvault.Start(t)
	roleID := v.Run("admin", "alice")
	p := filepath.Join(t.TempDir(), "concordctl.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf("coordinator: 127.0.0.1:7443\nvault:\n  address: %s\n  approle: {role_id: %s, secret_id_file: %s}\n  pki: {name: alice, ttl: 5m}\n",
		v.Addr, roleID, v.SecretIDFile("admin-alice"))), 0o600)
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	tc, stop, err := c.clientTLS(filepath.Dir(p), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cert, err := tc.GetClientCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.IdentityFromCertificate(cert.Leaf)
	if err != nil || id.String() != "admin/alice" {
		t.Fatalf("certificate of %v, %v; want admin/alice", id, err)
	}
}
