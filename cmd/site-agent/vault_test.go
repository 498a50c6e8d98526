package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testvault"
)

// TestLoadFromVault loads an agent.yaml whose certificate and keys come
// from a real Vault: a contradictory file is refused before it spends the
// single-use secret id, the good one logs in, and a second start with the
// same secret id is refused with the reason.
func TestLoadFromVault(t *testing.T) {
	v := testvault.Start(t)
	roleID := v.Run("site", "st-marys")
	dir := t.TempDir()
	sid := v.SecretIDFile("site-st-marys")
	good := fmt.Sprintf("site: st-marys\ncoordinator: 127.0.0.1:7443\nstate_dir: state\ndata: {dir: images}\n"+
		"vault:\n  address: %s\n  approle: {role_id: %s, secret_id_file: %s}\n  pki: {name: st-marys, ttl: 10m}\n  kv: {mount: concord-kv}\n",
		v.Addr, roleID, sid)
	t.Setenv("CONCORD_KEY_PASSPHRASE", "")
	for _, bad := range []struct{ yaml, want string }{
		{good + "key_passphrase_file: pass\n", "the keys live in one place"},
		{strings.Replace(good, "site: st-marys", "site: st-johns", 1), "would name another site"},
		{good + "tls: {cert: cert.pem}\n", "tls.ca/cert/key are both set"},
	} {
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(bad.yaml), 0o600)
		_, _, closeFn, err := load(p)
		closeFn()
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("error %v, want %q", err, bad.want)
		}
	}
	p := filepath.Join(dir, "agent.yaml")
	os.WriteFile(p, []byte(good), 0o600)
	cfg, _, closeFn, err := load(p)
	if err != nil {
		t.Fatalf("the refused files spent the secret id, or the good one fails: %v", err)
	}
	defer closeFn()
	if cfg.TLS.GetClientCertificate == nil || cfg.Secrets == nil || len(cfg.KeyPassphrase) != 0 {
		t.Fatalf("TLS from Vault %v, secrets in Vault %v", cfg.TLS.GetClientCertificate != nil, cfg.Secrets != nil)
	}
	_, _, closeFn2, err := load(p)
	closeFn2()
	if err == nil || !strings.Contains(err.Error(), "fresh secret id") {
		t.Fatalf("second start with a spent secret id: %v", err)
	}
}
