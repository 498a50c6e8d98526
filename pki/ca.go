package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files of the CA directory.
const (
	CACertFile    = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	InventoryFile = "inventory.json"
	lockFile      = ".lock"
)

// Validity periods.
const (
	CAValidity          = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
	clockSkewAllowance  = 5 * time.Minute
	// DefaultCACommonName is the CA certificate's name when pki init is given none.
	DefaultCACommonName = "Concord consortium CA"
)

// Sentinel errors of the CA.
var (
	// ErrCAExists means InitCA found a CA already in the directory.
	ErrCAExists = errors.New("a consortium CA already exists")
	// ErrNoCA means the directory holds no usable CA.
	ErrNoCA = errors.New("no consortium CA")
	// ErrLocked means another pki command holds the CA directory's lock.
	ErrLocked = errors.New("CA directory is locked")
)

// InitCA creates the consortium CA in dir (created with mode 0700 if
// missing): a self-signed ECDSA P-256 certificate valid 10 years (ca.pem),
// its key (ca-key.pem, mode 0600) and an empty inventory. It refuses to
// touch a directory that already holds any of these files. An empty
// commonName means "Concord consortium CA".
func InitCA(dir string, commonName string) error {
	if commonName == "" {
		commonName = DefaultCACommonName
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create CA directory: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return err
	}
	defer unlock()
	for _, f := range []string{CACertFile, CAKeyFile, InventoryFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s holds %s; refusing to overwrite it (use another --dir): %w", dir, f, ErrCAExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check CA directory: %w", err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Concord"}},
		NotBefore:             now.Add(-clockSkewAllowance),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("sign CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	// The key first, exclusively: if anything below fails, a rerun stops
	// at ErrCAExists instead of silently making a second CA.
	if err := writeNew(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, CACertFile), pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return err
	}
	return (&Inventory{}).save(filepath.Join(dir, InventoryFile))
}

// IssueRequest asks for a certificate.
type IssueRequest struct {
	Role Role
	Name string
	// Hosts are the DNS names and IP addresses the coordinator is reached
	// at; required for RoleCoordinator, refused for the others.
	Hosts []string
	// Validity is how long the certificate is valid; zero means one year.
	Validity time.Duration
}

// Issue signs a new key pair for req with the CA in caDir and records it in
// the inventory. An earlier certificate of the same role and name stays
// valid until it expires or is revoked, so a renewal can be rolled out
// before the old certificate is revoked.
func Issue(caDir string, req IssueRequest) (Kit, error) {
	return issue(caDir, req, time.Now())
}

// issue is Issue at a given time; tests use it to make expired certificates.
func issue(caDir string, req IssueRequest, now time.Time) (Kit, error) {
	if err := req.validate(); err != nil {
		return Kit{}, err
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	unlock, err := lock(caDir)
	if err != nil {
		return Kit{}, err
	}
	defer unlock()
	ca, err := loadCA(caDir)
	if err != nil {
		return Kit{}, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		return Kit{}, fmt.Errorf("a certificate valid for %s would outlive the CA (expires %s): ask for a shorter validity",
			validity, ca.cert.NotAfter.Format(time.DateOnly))
	}
	invPath := filepath.Join(caDir, InventoryFile)
	inv, err := LoadInventory(invPath)
	if err != nil {
		return Kit{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Kit{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return Kit{}, err
	}
	id := Identity{Role: req.Role, Name: req.Name}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name, OrganizationalUnit: []string{string(req.Role)}, Organization: []string{"Concord"}},
		NotBefore:             now.Add(-clockSkewAllowance),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URI()},
		SubjectKeyId:          keyID(&key.PublicKey),
		AuthorityKeyId:        ca.cert.SubjectKeyId,
	}
	if req.Role == RoleCoordinator {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range req.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return Kit{}, fmt.Errorf("sign certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Kit{}, err
	}
	entry := Entry{
		Serial:    SerialString(serial),
		Role:      req.Role,
		Name:      req.Name,
		Hosts:     req.Hosts,
		NotBefore: tmpl.NotBefore.UTC().Truncate(time.Second),
		NotAfter:  tmpl.NotAfter.UTC().Truncate(time.Second),
	}
	inv.add(entry)
	if err := inv.save(invPath); err != nil {
		return Kit{}, err
	}
	return Kit{
		Role:     req.Role,
		Name:     req.Name,
		CertPEM:  pemBlock("CERTIFICATE", der),
		KeyPEM:   keyPEM,
		CAPEM:    ca.certPEM,
		Serial:   entry.Serial,
		NotAfter: entry.NotAfter,
	}, nil
}

func (req IssueRequest) validate() error {
	if !req.Role.Valid() {
		return fmt.Errorf("issue: role %q: use one of site, admin, auditor, coordinator: %w", req.Role, ErrInvalidIdentity)
	}
	if err := ValidateName(req.Name); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	if req.Validity < 0 {
		return fmt.Errorf("issue: validity %s is negative", req.Validity)
	}
	if req.Role != RoleCoordinator && len(req.Hosts) > 0 {
		return fmt.Errorf("issue: only a coordinator certificate names hosts; %s %s must not", req.Role, req.Name)
	}
	if req.Role == RoleCoordinator && len(req.Hosts) == 0 {
		return fmt.Errorf("issue: a coordinator certificate needs the host names or IP addresses sites dial, e.g. --host coord.example.org --host 10.0.0.5")
	}
	for _, h := range req.Hosts {
		if net.ParseIP(h) == nil && !validHostname(h) {
			return fmt.Errorf("issue: host %q is neither an IP address nor a DNS name", h)
		}
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.ToLower(h), ".") {
		if err := ValidateName(label); err != nil {
			return false
		}
	}
	return true
}

// Revoke marks every unrevoked certificate of role and name revoked in the
// inventory. A coordinator watching the inventory refuses their calls from
// then on. It fails with ErrNotFound if there was nothing to revoke.
func Revoke(caDir string, role Role, name string) error {
	return revoke(caDir, role, name, time.Now())
}

func revoke(caDir string, role Role, name string, now time.Time) error {
	if !role.Valid() {
		return fmt.Errorf("revoke: role %q: %w", role, ErrInvalidIdentity)
	}
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	unlock, err := lock(caDir)
	if err != nil {
		return err
	}
	defer unlock()
	invPath := filepath.Join(caDir, InventoryFile)
	inv, err := LoadInventory(invPath)
	if err != nil {
		return err
	}
	if inv.revokeAll(role, name, now) == 0 {
		return fmt.Errorf("revoke: %s %s has no unrevoked certificate (see pki list): %w", role, name, ErrNotFound)
	}
	return inv.save(invPath)
}

// RevokeSerial revokes one certificate by serial number, e.g. the old one
// after a renewal. It fails with ErrNotFound for an unknown serial and
// does nothing to a certificate already revoked.
func RevokeSerial(caDir, serial string) error {
	unlock, err := lock(caDir)
	if err != nil {
		return err
	}
	defer unlock()
	invPath := filepath.Join(caDir, InventoryFile)
	inv, err := LoadInventory(invPath)
	if err != nil {
		return err
	}
	i, ok := inv.bySerial[strings.ToLower(serial)]
	if !ok {
		return fmt.Errorf("revoke: serial %s is not in the inventory (see pki list): %w", serial, ErrNotFound)
	}
	e := &inv.Certificates[i]
	if e.Revoked {
		return nil
	}
	t := time.Now().UTC()
	e.Revoked, e.RevokedAt = true, &t
	return inv.save(invPath)
}

type caPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func loadCA(dir string) (*caPair, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("read CA certificate (run pki init first?): %w", errors.Join(err, ErrNoCA))
	}
	certs, err := parseCertificates(certPEM)
	if err != nil || len(certs) != 1 || !certs[0].IsCA {
		return nil, fmt.Errorf("%s is not a single CA certificate: %w", CACertFile, errors.Join(err, ErrNoCA))
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", errors.Join(err, ErrNoCA))
	}
	key, err := parseECKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeyFile, errors.Join(err, ErrNoCA))
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s: %w", CAKeyFile, CACertFile, ErrNoCA)
	}
	return &caPair{cert: certs[0], key: key, certPEM: certPEM}, nil
}

// lock takes the CA directory's lock file; it is a plain file created
// exclusively, so it works on every filesystem and OS.
func lock(dir string) (unlock func(), err error) {
	p := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s exists: another pki command is running; if none is, remove that file: %w", p, ErrLocked)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("CA directory %s does not exist (run pki init first?): %w", dir, ErrNoCA)
		}
		return nil, fmt.Errorf("lock CA directory: %w", err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
	return func() { os.Remove(p) }, nil
}

func newSerial() (*big.Int, error) {
	// 127 random bits: unique in practice, positive, within RFC 5280's 20 octets.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(b) // RFC 5280 §4.2.1.2 method 1; an identifier, not a security property
	return sum[:]
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PKCS#8 PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	return ec, nil
}

func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return out, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeNew creates path exclusively with perm and data.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
