package vaultauth

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/concord-fl/concord/pki"
)

// Inventory is the coordinator's pki.InventorySource over Vault's PKI: a
// serial is first looked up in Files (the concordctl inventory, if any),
// then in Vault (mount/cert/<serial>). Answers from Vault are cached for
// Refresh, so a revocation in Vault takes effect within Refresh; the cache
// holds at most maxCached serials.
type Inventory struct {
	api     *api.Client
	mount   string
	files   pki.InventorySource
	refresh time.Duration
	now     func() time.Time

	mu     sync.Mutex
	cache  map[string]cached
	report func(pki.Entry)
}

type cached struct {
	e       pki.Entry
	fetched time.Time
}

const maxCached = 10000

// NewInventory returns an Inventory over the PKI mount. files may be nil;
// refresh <= 0 means 30s.
func NewInventory(vc *Client, mount string, files pki.InventorySource, refresh time.Duration) *Inventory {
	if refresh <= 0 {
		refresh = 30 * time.Second
	}
	return &Inventory{api: vc.api, mount: mount, files: files, refresh: refresh, now: time.Now,
		cache: map[string]cached{}, report: func(pki.Entry) {}}
}

// ReportNewCertificates makes the Inventory call fn, once per serial, for
// each Vault-issued certificate it finds for the first time. The
// coordinator calls it at start to record each serial in its audit log.
func (inv *Inventory) ReportNewCertificates(fn func(pki.Entry)) {
	inv.mu.Lock()
	inv.report = fn
	inv.mu.Unlock()
}

// Lookup implements pki.InventorySource.
func (inv *Inventory) Lookup(serial string) (pki.Entry, error) {
	if inv.files != nil {
		e, err := inv.files.Lookup(serial)
		if !errors.Is(err, pki.ErrNotFound) {
			return e, err
		}
	}
	now := inv.now()
	inv.mu.Lock()
	c, ok := inv.cache[serial]
	inv.mu.Unlock()
	if ok && now.Sub(c.fetched) < inv.refresh {
		return c.e, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := inv.fetch(ctx, serial)
	if err != nil {
		return pki.Entry{}, err
	}
	inv.mu.Lock()
	_, known := inv.cache[serial]
	if len(inv.cache) >= maxCached {
		for s, c := range inv.cache {
			if now.After(c.e.NotAfter) || now.Sub(c.fetched) >= inv.refresh {
				delete(inv.cache, s)
			}
		}
	}
	if len(inv.cache) < maxCached {
		inv.cache[serial] = cached{e: e, fetched: now}
	}
	report := inv.report
	inv.mu.Unlock()
	if !known {
		report(e)
	}
	return e, nil
}

// HasActive implements coordinator.RotatingInventory over the
// certificates this Inventory has looked up: whether role/name holds one
// other than except that was neither revoked nor expired when last read.
func (inv *Inventory) HasActive(role pki.Role, name, except string, now time.Time) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for s, c := range inv.cache {
		if s != except && c.e.Role == role && c.e.Name == name && c.e.Status(now) == "active" {
			return true
		}
	}
	return false
}

// fetch reads one certificate from Vault. An unknown serial wraps
// pki.ErrNotFound; Vault being unreachable is any other error.
func (inv *Inventory) fetch(ctx context.Context, serial string) (pki.Entry, error) {
	vs, err := VaultSerial(serial)
	if err != nil {
		return pki.Entry{}, fmt.Errorf("serial %s: %w", serial, pki.ErrNotFound)
	}
	sec, err := inv.api.Logical().ReadWithContext(ctx, inv.mount+"/cert/"+vs)
	if err != nil {
		return pki.Entry{}, fmt.Errorf("vault inventory: %w", err)
	}
	if sec == nil || sec.Data == nil {
		return pki.Entry{}, fmt.Errorf("serial %s is not in Vault's PKI %s: %w", serial, inv.mount, pki.ErrNotFound)
	}
	certPEM, _ := sec.Data["certificate"].(string)
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		return pki.Entry{}, fmt.Errorf("vault inventory: serial %s: no PEM certificate in the response", serial)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return pki.Entry{}, fmt.Errorf("vault inventory: serial %s: %w", serial, err)
	}
	id, err := pki.IdentityFromCertificate(cert)
	if err != nil {
		return pki.Entry{}, fmt.Errorf("serial %s: %v: %w", serial, err, pki.ErrNotFound)
	}
	if id.Serial != serial {
		return pki.Entry{}, fmt.Errorf("vault inventory: asked for serial %s, got %s", serial, id.Serial)
	}
	e := pki.Entry{Serial: serial, Role: id.Role, Name: id.Name, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
	if rt, ok := sec.Data["revocation_time"].(json.Number); ok {
		if n, err := rt.Int64(); err == nil && n > 0 {
			at := time.Unix(n, 0).UTC()
			e.Revoked, e.RevokedAt = true, &at
		}
	}
	return e, nil
}

// VaultSerial converts a serial in pki.SerialString form (lower-case hex,
// no leading zeros) to Vault's colon-separated bytes ("1a:2b:...").
func VaultSerial(serial string) (string, error) {
	n, ok := new(big.Int).SetString(serial, 16)
	if !ok || n.Sign() <= 0 || len(serial) > 40 {
		return "", fmt.Errorf("serial %q is not a positive hex number of at most 20 bytes", serial)
	}
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":"), nil
}
