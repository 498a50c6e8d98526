package config

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/pki"
)

// TestVaultCheck refuses every contradictory or incomplete vault: section.
func TestVaultCheck(t *testing.T) {
	login := "vault:\n  address: https://vault:8200\n  approle: {role_id: r, secret_id_file: s}\n"
	files := pki.TLSFiles{CA: "ca.pem", Cert: "cert.pem", Key: "key.pem"}
	for _, tc := range []struct {
		role pki.Role
		tls  pki.TLSFiles
		yaml string
		want string
	}{
		{pki.RoleSite, files, "", ""},
		{pki.RoleSite, pki.TLSFiles{}, login + "  pki: {name: st-marys, ttl: 2m}\n", ""},
		{pki.RoleSite, files, login + "  kv: {mount: concord-kv}\n", ""},
		{pki.RoleCoordinator, pki.TLSFiles{}, login + "  pki: {name: main, hosts: [127.0.0.1]}\n", ""},
		{pki.RoleSite, files, login + "  pki: {name: st-marys}\n", "tls.ca/cert/key are both set"},
		{pki.RoleSite, pki.TLSFiles{}, login, "set pki.name"},
		{pki.RoleSite, pki.TLSFiles{}, login + "  pki: {ttl: 1h}\n  kv: {mount: k}\n", "pki: name is required"},
		{pki.RoleAdmin, pki.TLSFiles{}, login + "  pki: {name: ann}\n  kv: {mount: concord-kv}\n", "site agents only"},
		{pki.RoleSite, pki.TLSFiles{}, login + "  kv: {prefix: sites/x}\n", "kv.mount is required"},
		{pki.RoleSite, pki.TLSFiles{}, login + "  pki: {name: st-marys, hosts: [a]}\n", "coordinator's certificate only"},
		{pki.RoleCoordinator, pki.TLSFiles{}, login + "  pki: {name: main}\n", "hosts is required"},
		{pki.RoleSite, pki.TLSFiles{}, login + "  pki: {name: st-marys, ttl: 30s}\n", "at least 1m"},
		{pki.RoleSite, pki.TLSFiles{}, "vault:\n  address: vault:8200\n  approle: {role_id: r, secret_id_file: s}\n  pki: {name: x}\n", "http:// or https://"},
		{pki.RoleSite, pki.TLSFiles{}, "vault:\n  address: https://v\n  approle: {role_id: r}\n  pki: {name: x}\n", "secret_id_file is required"},
	} {
		var f struct {
			Vault Vault `yaml:"vault"`
		}
		if err := Decode([]byte(tc.yaml), &f); err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		err := f.Vault.Check(tc.role, tc.tls)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s %q: %v", tc.role, tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want %q", tc.role, tc.yaml, err, tc.want)
		}
	}
}

func TestVaultCertRequestDefaults(t *testing.T) {
	var v Vault
	v.PKI.Name = "st-marys"
	r := v.CertRequest(pki.RoleSite)
	if r.Mount != "concord-pki" || r.Role != "site-st-marys" || r.TTL.String() != "1h0m0s" || r.Identity.String() != "site/st-marys" {
		t.Fatalf("%+v", r)
	}
}
