package vaultauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
)

// ErrNoSecret wraps a lookup of a secret that is not in the store.
var ErrNoSecret = errors.New("no such secret in vault")

// maxSecretBytes bounds a stored secret: a site's sealed HE key material
// (its secret key and the key shares it holds, in JSON) reaches a few MiB
// with the largest parameter sets, and Vault's own default request limit
// is 32 MiB.
const maxSecretBytes = 16 << 20

// KV is a folder of binary secrets in a KV v2 mount, e.g. mount concord-kv,
// prefix sites/st-marys: one Vault secret per name, its bytes in field
// "b64".
type KV struct {
	kv     *api.KVv2
	mount  string
	prefix string
}

// NewKV returns the store at mount/prefix.
func NewKV(vc *Client, mount, prefix string) (*KV, error) {
	if mount == "" || prefix == "" || strings.Contains(prefix, "..") || strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("vault kv: mount %q and prefix %q: both are required, prefix relative without '..'", mount, prefix)
	}
	return &KV{kv: vc.api.KVv2(mount), mount: mount, prefix: strings.TrimSuffix(prefix, "/")}, nil
}

func (s *KV) path(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/?#% ") || strings.Contains(name, "..") {
		return "", fmt.Errorf("vault kv: secret name %q: use letters, digits, '-', '_' and '.'", name)
	}
	return s.prefix + "/" + name, nil
}

// Put stores a secret as a new version (KV v2 keeps earlier ones).
func (s *KV) Put(ctx context.Context, name string, data []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if len(data) > maxSecretBytes {
		return fmt.Errorf("vault kv %s/%s: %d bytes, more than %d", s.mount, p, len(data), maxSecretBytes)
	}
	if _, err := s.kv.Put(ctx, p, map[string]any{"b64": base64.StdEncoding.EncodeToString(data)}); err != nil {
		return fmt.Errorf("vault kv write %s/%s: %w", s.mount, p, err)
	}
	return nil
}

// Lookup reads a secret, reporting false if there is none.
func (s *KV) Lookup(ctx context.Context, name string) ([]byte, bool, error) {
	b, err := s.Get(ctx, name)
	if errors.Is(err, ErrNoSecret) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// Get reads a secret; a missing one wraps ErrNoSecret.
func (s *KV) Get(ctx context.Context, name string) ([]byte, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	sec, err := s.kv.Get(ctx, p)
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil, fmt.Errorf("vault kv %s/%s: %w", s.mount, p, ErrNoSecret)
	}
	if err != nil {
		return nil, fmt.Errorf("vault kv read %s/%s: %w", s.mount, p, err)
	}
	v, _ := sec.Data["b64"].(string)
	if v == "" || base64.StdEncoding.DecodedLen(len(v)) > maxSecretBytes+3 {
		return nil, fmt.Errorf("vault kv %s/%s: field b64 is missing or too large: not written by Concord", s.mount, p)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("vault kv %s/%s: field b64: %w", s.mount, p, err)
	}
	return b, nil
}
