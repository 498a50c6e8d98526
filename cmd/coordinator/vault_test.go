package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testvault"
)

// TestLoadFromVault loads a coordinator.yaml whose certificate comes from
// a real Vault: the server certificate is chosen per handshake, clients
// are reconnected within a quarter of the TTL, and an inventory file
// beside vault.pki is refused before the secret id is spent.
func TestLoadFromVault(t *testing.T) {
	v := testvault.Start(t)
	roleID := v.Run("coordinator", "main", "localhost,127.0.0.1")
	dir := t.TempDir()
	good := fmt.Sprintf("listen: 127.0.0.1:0\nstate_dir: state\n"+
		"vault:\n  address: %s\n  approle: {role_id: %s, secret_id_file: %s}\n  pki: {name: main, ttl: 4m, hosts: [localhost, 127.0.0.1]}\n",
		v.Addr, roleID, v.SecretIDFile("coordinator-main"))
	p := filepath.Join(dir, "coordinator.yaml")
	os.WriteFile(p, []byte(good+"inventory: inventory.json\n"), 0o600)
	if _, _, closeFn, err := load(p); err == nil || !strings.Contains(err.Error(), "remove inventory or vault.pki") {
		closeFn()
		t.Fatalf("inventory beside vault.pki: %v", err)
	}
	os.WriteFile(p, []byte(good), 0o600)
	cfg, _, closeFn, err := load(p)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if cfg.TLS.GetCertificate == nil || len(cfg.TLS.Certificates) != 0 || cfg.MaxConnectionAge != time.Minute {
		t.Fatalf("GetCertificate set %v, %d fixed certificates, MaxConnectionAge %v (want 1m)",
			cfg.TLS.GetCertificate != nil, len(cfg.TLS.Certificates), cfg.MaxConnectionAge)
	}
	if _, err := cfg.Inventory.Lookup("abc"); err == nil {
		t.Fatal("an unknown serial was found in Vault's inventory")
	}
}
