package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/concord-fl/concord/internal/vaultauth"
	"github.com/concord-fl/concord/pki"
)

// Vault is the vault: section of agent.yaml, coordinator.yaml and
// concordctl.yaml (deploy/vault/README.md). Absent, certificates come from
// the tls: files and a site's keys from its sealed state, as before.
type Vault struct {
	// Address is Vault's URL; CA the PEM file that verifies its HTTPS
	// certificate (empty: system roots).
	Address string `yaml:"address"`
	CA      string `yaml:"ca"`
	AppRole struct {
		Mount        string `yaml:"mount"` // default approle
		RoleID       string `yaml:"role_id"`
		SecretIDFile string `yaml:"secret_id_file"`
	} `yaml:"approle"`
	// PKI, when its name is set, replaces tls.cert and tls.key (and
	// tls.ca): certificates of lifetime TTL from Vault, renewed at 2/3.
	PKI struct {
		Mount string `yaml:"mount"` // default concord-pki
		Role  string `yaml:"role"`  // default <role>-<name>, as deploy/vault/setup.sh names it
		Name  string `yaml:"name"`  // the identity: concord://<role>/<name>
		TTL   string `yaml:"ttl"`   // default 1h
		// Hosts are the coordinator's DNS names and IP addresses.
		Hosts []string `yaml:"hosts"`
	} `yaml:"pki"`
	// KV, sites only: when set, the site's HE keys and witness key live in
	// this KV v2 mount instead of sealed in the agent's state, and
	// key_passphrase_file must be absent.
	KV struct {
		Mount  string `yaml:"mount"`  // e.g. concord-kv
		Prefix string `yaml:"prefix"` // default sites/<name>
	} `yaml:"kv"`
}

// Set reports whether the section is present.
func (v Vault) Set() bool {
	return v.Address != "" || v.CA != "" || v.AppRole.RoleID != "" || v.AppRole.SecretIDFile != "" || v.AppRole.Mount != "" ||
		v.UsesPKI() || v.PKI.Mount != "" || v.PKI.Role != "" || v.PKI.TTL != "" || len(v.PKI.Hosts) > 0 || v.UsesKV()
}

// UsesPKI reports whether certificates come from Vault.
func (v Vault) UsesPKI() bool { return v.PKI.Name != "" }

// UsesKV reports whether a site's keys live in Vault.
func (v Vault) UsesKV() bool { return v.KV.Mount != "" || v.KV.Prefix != "" }

// Check refuses a vault: section that contradicts itself or the rest of
// the file. role is the file's holder; tls is its tls: section.
func (v Vault) Check(role pki.Role, tls pki.TLSFiles) error {
	if !v.Set() {
		return nil
	}
	if !v.UsesPKI() && !v.UsesKV() {
		return errors.New("vault: set pki.name (certificates from Vault) or kv.mount (a site's keys in Vault), or remove the vault section")
	}
	if v.UsesPKI() && (tls.Cert != "" || tls.Key != "" || tls.CA != "") {
		return errors.New("vault.pki and tls.ca/cert/key are both set: the certificate and its trust roots come from one place; remove the tls section or vault.pki")
	}
	if !v.UsesPKI() && (v.PKI.Mount != "" || v.PKI.Role != "" || v.PKI.TTL != "" || len(v.PKI.Hosts) > 0) {
		return errors.New("vault.pki: name is required (the identity in the certificate)")
	}
	if v.UsesKV() && role != pki.RoleSite {
		return fmt.Errorf("vault.kv is for site agents only; a %s keeps no key there", role)
	}
	if v.UsesKV() && v.KV.Mount == "" {
		return errors.New("vault.kv.mount is required (e.g. concord-kv)")
	}
	if len(v.PKI.Hosts) > 0 && role != pki.RoleCoordinator {
		return errors.New("vault.pki.hosts is for the coordinator's certificate only")
	}
	if v.UsesPKI() && role == pki.RoleCoordinator && len(v.PKI.Hosts) == 0 {
		return errors.New("vault.pki.hosts is required: the coordinator's DNS names and IP addresses")
	}
	if _, err := v.ttl(); err != nil {
		return err
	}
	return v.login("", nil).Validate()
}

func (v Vault) ttl() (time.Duration, error) {
	if v.PKI.TTL == "" {
		return time.Hour, nil
	}
	d, err := time.ParseDuration(v.PKI.TTL)
	if err != nil || d < time.Minute {
		return 0, fmt.Errorf("vault.pki.ttl %q: give a duration of at least 1m, e.g. 1h", v.PKI.TTL)
	}
	return d, nil
}

// TTL is the certificates' lifetime (default 1h).
func (v Vault) TTL() time.Duration {
	d, _ := v.ttl()
	return d
}

func (v Vault) login(base string, logger *slog.Logger) vaultauth.Login {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || base == "" {
			return p
		}
		return filepath.Join(base, p)
	}
	return vaultauth.Login{Address: v.Address, CAFile: abs(v.CA), RoleID: v.AppRole.RoleID,
		SecretIDFile: abs(v.AppRole.SecretIDFile), Mount: v.AppRole.Mount, Logger: logger}
}

// Dial logs in (consuming the secret id); relative paths are relative to
// base, the config file's folder.
func (v Vault) Dial(ctx context.Context, base string, logger *slog.Logger) (*vaultauth.Client, error) {
	return vaultauth.Dial(ctx, v.login(base, logger))
}

// CertRequest is what to ask Vault's PKI for, for a holder of role.
func (v Vault) CertRequest(role pki.Role) vaultauth.CertRequest {
	r := vaultauth.CertRequest{Mount: v.PKI.Mount, Role: v.PKI.Role, Identity: pki.Identity{Role: role, Name: v.PKI.Name},
		Hosts: v.PKI.Hosts, TTL: v.TTL()}
	if r.Mount == "" {
		r.Mount = "concord-pki"
	}
	if r.Role == "" {
		r.Role = string(role) + "-" + v.PKI.Name
	}
	return r
}

// KVStore is a site's secret store.
func (v Vault) KVStore(vc *vaultauth.Client, site string) (*vaultauth.KV, error) {
	prefix := v.KV.Prefix
	if prefix == "" {
		prefix = "sites/" + site
	}
	return vaultauth.NewKV(vc, v.KV.Mount, prefix)
}
