package siteagent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/concord-fl/concord/privacy/audit"
)

// SecretStore keeps a site's secrets outside its state database, e.g. in
// Vault's KV v2 (internal/vaultauth.KV implements it). Names are short
// ASCII words ("seal-key", "he-7", "witness-key").
//
// With a SecretStore the agent keeps there: a random 32-byte seal key
// (made on first use), each job's HE key material sealed with it (the
// party serialises only sealed), and, unless Config.WitnessKey is set, the
// witness key that signs its audit cosignatures. The state database then
// holds no secret, and a restored backup or a new host needs only the
// store's credentials.
type SecretStore interface {
	// Put stores data under name, replacing what was there.
	Put(ctx context.Context, name string, data []byte) error
	// Lookup returns the data under name, and false if there is none.
	Lookup(ctx context.Context, name string) ([]byte, bool, error)
}

// secretTimeout bounds each call to the SecretStore.
const secretTimeout = 30 * time.Second

func (a *Agent) secretLookup(name string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), secretTimeout)
	defer cancel()
	b, ok, err := a.cfg.Secrets.Lookup(ctx, name)
	if err != nil {
		return nil, false, fmt.Errorf("secret store: %w", err)
	}
	return b, ok, nil
}

func (a *Agent) secretPut(name string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), secretTimeout)
	defer cancel()
	if err := a.cfg.Secrets.Put(ctx, name, data); err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	return nil
}

// storedSealKey returns the seal key from the SecretStore, making it on
// first use.
func (a *Agent) storedSealKey() ([]byte, error) {
	k, ok, err := a.secretLookup("seal-key")
	switch {
	case err != nil:
		return nil, err
	case ok && len(k) != 32:
		return nil, fmt.Errorf("secret store: seal-key has %d bytes, want 32: it was not written by a site agent", len(k))
	case ok:
		return k, nil
	}
	k = make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, a.secretPut("seal-key", k)
}

func heSecretName(job string) string { return "he-" + job }

// storedWitnessKey loads the witness key from the SecretStore, making it
// on first use.
func storedWitnessKey(s SecretStore, name string) (*audit.Key, error) {
	ctx, cancel := context.WithTimeout(context.Background(), secretTimeout)
	defer cancel()
	pemKey, ok, err := s.Lookup(ctx, "witness-key")
	if err != nil {
		return nil, fmt.Errorf("secret store: %w", err)
	}
	if ok {
		return audit.ParseKeyPEM(pemKey)
	}
	k, err := audit.GenerateKey(nil, name)
	if err != nil {
		return nil, err
	}
	if pemKey, err = k.MarshalPEM(); err != nil {
		return nil, err
	}
	if err := s.Put(ctx, "witness-key", pemKey); err != nil {
		return nil, fmt.Errorf("secret store: %w", err)
	}
	return k, nil
}

var errSecretsAndPassphrase = errors.New("both a secret store (vault) and a key passphrase are configured: the site's keys live in one place; remove key_passphrase_file or the vault kv settings")
