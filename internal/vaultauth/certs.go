package vaultauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/concord-fl/concord/pki"
)

// CertRequest says which certificate to ask Vault's PKI engine for.
type CertRequest struct {
	// Mount is the PKI mount, e.g. concord-pki.
	Mount string
	// Role is the PKI role, e.g. site-st-marys (deploy/vault creates one
	// per identity, allowed only that identity's URI SAN).
	Role string
	// Identity is the holder: the certificate's URI SAN concord://role/name.
	Identity pki.Identity
	// Hosts are the DNS names and IP addresses of a coordinator
	// certificate; empty for client certificates.
	Hosts []string
	// TTL is each certificate's lifetime (minimum 1 minute).
	TTL time.Duration
}

// Validate reports the first missing or malformed field.
func (r CertRequest) Validate() error {
	switch {
	case r.Mount == "" || r.Role == "":
		return errors.New("vault pki: mount and role are required")
	case strings.ContainsAny(r.Mount+r.Role, " \t\n?#"):
		return fmt.Errorf("vault pki: mount %q or role %q has a character Vault paths do not allow", r.Mount, r.Role)
	case r.TTL < time.Minute:
		return fmt.Errorf("vault pki: ttl %v is shorter than 1m: renewal could not keep up", r.TTL)
	case r.Identity.Role == pki.RoleCoordinator && len(r.Hosts) == 0:
		return errors.New("vault pki: a coordinator certificate needs hosts (its DNS names or IP addresses)")
	}
	if !r.Identity.Role.Valid() {
		return fmt.Errorf("vault pki: role %q: %w", r.Identity.Role, pki.ErrInvalidIdentity)
	}
	return pki.ValidateName(r.Identity.Name)
}

// Issued describes one certificate Certs obtained.
type Issued struct {
	Identity  pki.Identity // Serial in pki.SerialString form
	NotBefore time.Time
	NotAfter  time.Time
}

// Certs keeps a current certificate from Vault's PKI engine and renews it
// at 2/3 of its lifetime. Serve it with ServerTLS or ClientTLS.
//
// Every certificate is for the same ECDSA P-256 key, made at StartCerts and
// kept in memory only: Vault signs a request (pki/sign) and never sees the
// private key, and what the holder signs with it (a site's privacy
// receipts) verifies against any of its certificates, whichever one the
// connection that carries it was opened with.
type Certs struct {
	vc  *Client
	req CertRequest
	log *slog.Logger
	// onIssue is called, outside any lock, for each new certificate.
	onIssue func(Issued)
	// key is this process's key: every certificate is issued for it.
	key *ecdsa.PrivateKey

	mu    sync.RWMutex
	cur   *tls.Certificate
	roots *x509.CertPool
}

// StartCerts issues the first certificate (failing if Vault refuses it),
// then renews in the background until ctx ends. onIssue, if not nil, is
// called for every certificate, the first included, before it is served.
func StartCerts(ctx context.Context, vc *Client, req CertRequest, onIssue func(Issued)) (*Certs, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &Certs{vc: vc, req: req, log: vc.log, onIssue: onIssue, key: key}
	if onIssue == nil {
		c.onIssue = func(Issued) {}
	}
	if err := c.renew(ctx); err != nil {
		return nil, err
	}
	go c.loop(ctx)
	return c, nil
}

// loop renews at 2/3 of the current certificate's lifetime; on failure it
// retries every 1/20 of the lifetime (at least 2s) until ctx ends.
func (c *Certs) loop(ctx context.Context) {
	for {
		leaf := c.leaf()
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		wait := time.Until(leaf.NotBefore.Add(life * 2 / 3))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(wait, 0)):
			}
			err := c.renew(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			wait = max(life/20, 2*time.Second)
			c.log.Error("vault certificate renewal failed; retrying", "identity", c.req.Identity.String(),
				"expires", leaf.NotAfter.UTC().Format(time.RFC3339), "retry_in", wait.String(), "err", err)
		}
	}
}

func (c *Certs) renew(ctx context.Context) error {
	cert, roots, issued, err := c.issue(ctx)
	if err != nil {
		return err
	}
	c.onIssue(issued)
	c.mu.Lock()
	c.cur, c.roots = cert, roots
	c.mu.Unlock()
	c.log.Info("vault certificate issued", "identity", c.req.Identity.String(), "serial", issued.Identity.Serial,
		"not_after", issued.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func (c *Certs) issue(ctx context.Context) (*tls.Certificate, *x509.CertPool, Issued, error) {
	csrTmpl := &x509.CertificateRequest{URIs: []*url.URL{c.req.Identity.URI()}}
	data := map[string]any{"uri_sans": c.req.Identity.URI().String(), "ttl": fmt.Sprintf("%ds", int(c.req.TTL.Seconds())),
		"exclude_cn_from_sans": true, "format": "pem"}
	if len(c.req.Hosts) > 0 {
		var dns, ips []string
		for _, h := range c.req.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				ips = append(ips, h)
				csrTmpl.IPAddresses = append(csrTmpl.IPAddresses, ip)
			} else {
				dns = append(dns, h)
				csrTmpl.DNSNames = append(csrTmpl.DNSNames, h)
			}
		}
		cn := c.req.Hosts[0]
		if len(dns) > 0 {
			cn = dns[0]
		}
		csrTmpl.Subject.CommonName = cn
		data["common_name"], data["alt_names"], data["ip_sans"] = cn, strings.Join(dns, ","), strings.Join(ips, ",")
		data["exclude_cn_from_sans"] = false
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, csrTmpl, c.key)
	if err != nil {
		return nil, nil, Issued{}, fmt.Errorf("vault pki: certificate request: %w", err)
	}
	data["csr"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	path := c.req.Mount + "/sign/" + c.req.Role
	sec, err := c.vc.api.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, nil, Issued{}, fmt.Errorf("vault pki %s: %w", path, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, nil, Issued{}, fmt.Errorf("vault pki %s: empty response", path)
	}
	certPEM, _ := sec.Data["certificate"].(string)
	var chain []string
	if list, ok := sec.Data["ca_chain"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				chain = append(chain, s)
			}
		}
	}
	if len(chain) == 0 {
		if s, ok := sec.Data["issuing_ca"].(string); ok {
			chain = []string{s}
		}
	}
	return buildCert(certPEM, c.key, chain, c.req.Identity)
}

// buildCert assembles a tls.Certificate (leaf plus intermediates) and the
// trust roots from a PKI sign response, and checks that the certificate
// names want and chains to the roots.
func buildCert(certPEM string, key *ecdsa.PrivateKey, chain []string, want pki.Identity) (*tls.Certificate, *x509.CertPool, Issued, error) {
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, nil, Issued{}, errors.New("vault pki: the response holds no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, Issued{}, fmt.Errorf("vault pki: certificate: %w", err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, Issued{}, errors.New("vault pki: the certificate is not for the key this process asked for")
	}
	kp := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	var last *x509.Certificate
	for _, p := range chain {
		b, _ := pem.Decode([]byte(p))
		if b == nil {
			return nil, nil, Issued{}, errors.New("vault pki: a CA chain entry is not PEM")
		}
		ca, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, Issued{}, fmt.Errorf("vault pki: CA chain: %w", err)
		}
		last = ca
		if isSelfSigned(ca) {
			roots.AddCert(ca)
			continue
		}
		inter.AddCert(ca)
		kp.Certificate = append(kp.Certificate, ca.Raw)
	}
	if last == nil {
		return nil, nil, Issued{}, errors.New("vault pki: the response names no issuing CA")
	}
	if !isSelfSigned(last) { // the mount does not know its root: trust the top of the chain
		roots.AddCert(last)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, Issued{}, fmt.Errorf("vault pki: the certificate does not chain to the CA Vault returned: %w", err)
	}
	id, err := pki.IdentityFromCertificate(leaf)
	if err != nil {
		return nil, nil, Issued{}, fmt.Errorf("vault pki: %w", err)
	}
	if id.Role != want.Role || id.Name != want.Name {
		return nil, nil, Issued{}, fmt.Errorf("vault pki: asked for %s, got a certificate for %s", want, id)
	}
	return &kp, roots, Issued{Identity: id, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

func (c *Certs) leaf() *x509.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur.Leaf
}

// Current is the certificate new handshakes present.
func (c *Certs) Current() *tls.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur
}

// Roots is the trust pool of the PKI (the self-signed top of its chain).
func (c *Certs) Roots() *x509.CertPool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.roots
}

// ServerTLS is the coordinator's TLS configuration over Vault's PKI: as
// pki.ServerTLS, but the certificate is whichever is current at each
// handshake and client certificates must chain to Vault's CA. The roots
// are those of the first certificate; a new root needs a restart.
// Certificates stays empty: crypto/tls would serve Certificates[0] to every
// client that sends no server name (one dialling an IP address) and never
// call GetCertificate.
func (c *Certs) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.Current(), nil },
		ClientCAs:      c.Roots(),
		ClientAuth:     tls.RequireAndVerifyClientCert,
	}
}

// ClientTLS is a site's or admin's TLS configuration over Vault's PKI.
// Certificates holds the first certificate, for code that reads the
// holder's name and key from the config (the agent signs its privacy
// receipts with that key, which never changes); handshakes always use
// GetClientCertificate.
func (c *Certs) ClientTLS(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		Certificates:         []tls.Certificate{*c.Current()},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.Current(), nil },
		RootCAs:              c.Roots(),
		ServerName:           serverName,
	}
}

// MaxConnectionAge is the longest a coordinator may keep a connection open
// when its clients' certificates live ttl: a client renews at 2/3 of ttl,
// so a connection opened just before with the old certificate must be
// closed within the remaining third; a quarter leaves room for gRPC's 10%
// jitter.
func MaxConnectionAge(ttl time.Duration) time.Duration { return ttl / 4 }
