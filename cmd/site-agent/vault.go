package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/concord-fl/concord/internal/vaultauth"
	"github.com/concord-fl/concord/pki"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// checkVault refuses a vault: section that contradicts the rest of
// agent.yaml, before anything logs in (a login spends the secret id).
func (fc fileConfig) checkVault() error {
	if err := fc.Vault.Check(pki.RoleSite, fc.TLS); err != nil {
		return err
	}
	if fc.Vault.UsesKV() && (fc.KeyPassphraseFile != "" || os.Getenv("CONCORD_KEY_PASSPHRASE") != "") {
		return errors.New("vault.kv keeps the site's keys in Vault, but a key passphrase is configured too (key_passphrase_file or CONCORD_KEY_PASSPHRASE): the keys live in one place; remove one")
	}
	if n := fc.Vault.PKI.Name; n != "" && fc.Site != "" && n != fc.Site {
		return fmt.Errorf("site: %q but vault.pki.name: %q: the certificate would name another site; make them agree", fc.Site, n)
	}
	if fc.Vault.UsesKV() && !fc.Vault.UsesPKI() && fc.Site == "" {
		return errors.New("vault.kv needs the site's name: set site: (or vault.pki.name)")
	}
	return nil
}

// fromVault logs in to Vault once and returns the TLS configuration (nil
// when certificates come from the tls: files) and the secret store (nil
// when keys stay in the agent's state). stop ends the renewals.
func (fc fileConfig) fromVault(base, host string, logger *slog.Logger) (tc *tls.Config, secrets siteagent.SecretStore, stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	vc, err := fc.Vault.Dial(ctx, base, logger)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	stop = func() { cancel(); vc.Close() }
	name := fc.Site
	if fc.Vault.UsesPKI() {
		name = fc.Vault.PKI.Name
		certs, err := vaultauth.StartCerts(ctx, vc, fc.Vault.CertRequest(pki.RoleSite), nil)
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		tc = certs.ClientTLS(host)
	}
	if fc.Vault.UsesKV() {
		kv, err := fc.Vault.KVStore(vc, name)
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		secrets = kv
	}
	return tc, secrets, stop, nil
}
