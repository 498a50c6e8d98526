package vaultauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// maxResponseBytes bounds every response body read from Vault: a KV read
// of the largest secret (maxSecretBytes, base64 in JSON) fits; a PKI sign
// response is a few KiB.
const maxResponseBytes = 24 << 20

// Login is how a daemon or admin reaches Vault and proves who it is.
type Login struct {
	// Address is Vault's URL, e.g. https://vault.consortium.example:8200.
	Address string
	// CAFile is the PEM file that verifies Vault's HTTPS certificate;
	// empty: the system roots.
	CAFile string
	// RoleID is the AppRole role_id (not a secret).
	RoleID string
	// SecretIDFile holds the single-use secret_id.
	SecretIDFile string
	// Mount is the AppRole auth mount; default "approle".
	Mount string
	// Logger receives renewal failures; default slog.Default.
	Logger *slog.Logger
}

// Validate reports the first missing or malformed field.
func (l Login) Validate() error {
	switch {
	case l.Address == "":
		return errors.New("vault: address is required (e.g. https://vault.example:8200)")
	case !strings.HasPrefix(l.Address, "https://") && !strings.HasPrefix(l.Address, "http://"):
		return fmt.Errorf("vault: address %q: give an http:// or https:// URL", l.Address)
	case l.RoleID == "":
		return errors.New("vault: approle.role_id is required")
	case l.SecretIDFile == "":
		return errors.New("vault: approle.secret_id_file is required")
	}
	return nil
}

// Client is a logged-in Vault client whose token is renewed in the
// background until Close.
type Client struct {
	api     *api.Client
	log     *slog.Logger
	watcher *api.LifetimeWatcher
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
}

// NewAPIClient returns a Vault API client for address with no token: the
// environment's VAULT_TOKEN is deliberately ignored. Every response body
// is bounded.
func NewAPIClient(address, caFile string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client: %w", cfg.Error)
	}
	cfg.Address = address
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("vault ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("vault ca %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	cfg.HttpClient = &http.Client{Transport: boundedTransport{tr}, Timeout: 30 * time.Second}
	cfg.MaxRetries = 2
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c.ClearToken()
	return c, nil
}

// boundedTransport cuts every response body at maxResponseBytes.
type boundedTransport struct{ rt http.RoundTripper }

func (b boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{rc: resp.Body, left: maxResponseBytes}
	return resp, nil
}

type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("vault response larger than %d bytes", maxResponseBytes)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }

// ErrLogin wraps every refused AppRole login: a wrong role id, a secret id
// already used or expired, or a login from outside the bound CIDRs.
var ErrLogin = errors.New("vault AppRole login refused")

// Dial logs in with AppRole and starts renewing the token. The secret id
// is consumed: each Dial needs a fresh one.
func Dial(ctx context.Context, l Login) (*Client, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	secretID, err := readSecretID(l.SecretIDFile)
	if err != nil {
		return nil, err
	}
	c, err := NewAPIClient(l.Address, l.CAFile)
	if err != nil {
		return nil, err
	}
	mount := l.Mount
	if mount == "" {
		mount = "approle"
	}
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role_id": l.RoleID, "secret_id": secretID})
	if err != nil {
		return nil, fmt.Errorf("%w at %s (role %s): %w; ask the Vault operator for a fresh secret id", ErrLogin, l.Address, l.RoleID, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, fmt.Errorf("%w at %s: the response carries no token", ErrLogin, l.Address)
	}
	c.SetToken(sec.Auth.ClientToken)
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	vc := &Client{api: c, log: log, closing: make(chan struct{}), done: make(chan struct{})}
	if !sec.Auth.Renewable {
		close(vc.done)
		return vc, nil
	}
	if vc.watcher, err = c.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec}); err != nil {
		return nil, fmt.Errorf("vault token renewal: %w", err)
	}
	go vc.watcher.Start()
	go vc.watch()
	return vc, nil
}

func (c *Client) watch() {
	defer close(c.done)
	for {
		select {
		case err := <-c.watcher.DoneCh():
			select {
			case <-c.closing:
				return
			default:
			}
			if err != nil {
				c.log.Error("vault token can no longer be renewed; restart with a fresh secret id", "err", err)
			} else {
				c.log.Warn("vault token reached its maximum lifetime; restart with a fresh secret id")
			}
			return
		case r := <-c.watcher.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("vault token renewed", "ttl_s", r.Secret.Auth.LeaseDuration)
			}
		}
	}
}

// API is the logged-in client.
func (c *Client) API() *api.Client { return c.api }

// Close stops renewing the token (it stays valid until its TTL ends).
// Calling it again does nothing.
func (c *Client) Close() {
	if c.watcher == nil {
		return
	}
	c.once.Do(func() {
		close(c.closing)
		c.watcher.Stop()
	})
	<-c.done
}

func readSecretID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("vault secret id: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return "", fmt.Errorf("vault secret id %s: %w", path, err)
	}
	if len(b) > 4096 {
		return "", fmt.Errorf("vault secret id %s: larger than 4 KiB, not a secret id", path)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("vault secret id %s is empty", path)
	}
	return s, nil
}
