package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Kit file names, as WriteKit writes them and the Load helpers read them.
const (
	KitCertFile = "cert.pem"
	KitKeyFile  = "key.pem"
	KitCAFile   = "ca.pem"
)

// ServerTLS is the coordinator's TLS configuration: TLS 1.3 only, and every
// client must present a certificate that chains to the consortium CA.
// Which certificates are still welcome (inventory, revocation) and what
// they may call is the Authorizer's job, after the handshake.
func ServerTLS(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pool, cert, err := parseTLSMaterial(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ClientTLS is a site's, admin's or auditor's TLS configuration: TLS 1.3
// only, trusting only the consortium CA, presenting the kit's certificate.
// serverName must be one of the hosts the coordinator certificate was
// issued for; empty means take it from the dialled address (grpc does).
func ClientTLS(caPEM, certPEM, keyPEM []byte, serverName string) (*tls.Config, error) {
	pool, cert, err := parseTLSMaterial(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

// TLSFiles names the PEM files of a kit, as in the tls section of the
// generated config files.
type TLSFiles struct {
	CA   string `yaml:"ca" json:"ca"`
	Cert string `yaml:"cert" json:"cert"`
	Key  string `yaml:"key" json:"key"`
}

// KitTLSFiles returns the files of a kit folder.
func KitTLSFiles(dir string) TLSFiles {
	return TLSFiles{CA: filepath.Join(dir, KitCAFile), Cert: filepath.Join(dir, KitCertFile), Key: filepath.Join(dir, KitKeyFile)}
}

// Resolve makes relative paths relative to base (the config file's folder).
func (f TLSFiles) Resolve(base string) TLSFiles {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	return TLSFiles{CA: abs(f.CA), Cert: abs(f.Cert), Key: abs(f.Key)}
}

// Server reads the files and returns ServerTLS.
func (f TLSFiles) Server() (*tls.Config, error) {
	ca, cert, key, err := f.read()
	if err != nil {
		return nil, err
	}
	return ServerTLS(ca, cert, key)
}

// Client reads the files and returns ClientTLS.
func (f TLSFiles) Client(serverName string) (*tls.Config, error) {
	ca, cert, key, err := f.read()
	if err != nil {
		return nil, err
	}
	return ClientTLS(ca, cert, key, serverName)
}

func (f TLSFiles) read() (ca, cert, key []byte, err error) {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return nil, nil, nil, errors.New("tls: ca, cert and key files must all be set")
	}
	for _, p := range []struct {
		path string
		dst  *[]byte
	}{{f.CA, &ca}, {f.Cert, &cert}, {f.Key, &key}} {
		if *p.dst, err = os.ReadFile(p.path); err != nil {
			return nil, nil, nil, fmt.Errorf("tls: read %w", err)
		}
	}
	return ca, cert, key, nil
}

// LoadServerTLS reads cert.pem, key.pem and ca.pem from a kit folder.
func LoadServerTLS(dir string) (*tls.Config, error) { return KitTLSFiles(dir).Server() }

// LoadClientTLS reads cert.pem, key.pem and ca.pem from a kit folder.
func LoadClientTLS(dir, serverName string) (*tls.Config, error) {
	return KitTLSFiles(dir).Client(serverName)
}

func parseTLSMaterial(caPEM, certPEM, keyPEM []byte) (*x509.CertPool, tls.Certificate, error) {
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("CA: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("certificate and key: %w", err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, tls.Certificate{}, fmt.Errorf("certificate: %w", err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("certificate does not chain to the given CA (is this kit from another consortium, or expired?): %w", err)
	}
	return pool, cert, nil
}
