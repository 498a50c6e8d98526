package coordinator

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/concord-fl/concord/pki"
)

// EvCertificate records a certificate serial the coordinator met for the
// first time where certificates are issued on the fly (Vault's PKI): its
// own, at the first handshake that presents it, and each client's, at its
// first call. Kits from concordctl pki are in the inventory already and
// are not recorded again.
const EvCertificate = "certificate.seen"

// CertificateReporter is an optional ability of Config.Inventory: a source
// whose certificates are issued on the fly (internal/vaultauth.Inventory)
// calls fn once for each serial it finds for the first time, and the
// coordinator records it in the audit log.
type CertificateReporter interface {
	ReportNewCertificates(fn func(pki.Entry))
}

func (c *Coordinator) recordCertificate(e pki.Entry) {
	site := ""
	if e.Role == pki.RoleSite {
		site = e.Name
	}
	c.bus.emit(Event{Kind: EvCertificate, Actor: "coordinator", Site: site,
		Detail: fmt.Sprintf("certificate %s of %s/%s in use, valid %s to %s", e.Serial, e.Role, e.Name,
			e.NotBefore.UTC().Format(time.RFC3339), e.NotAfter.UTC().Format(time.RFC3339))})
}

// watchCertificates hooks the audit log to the inventory's new serials
// and, when the server certificate is chosen per handshake
// (tls.Config.GetCertificate, i.e. it rotates), to the coordinator's own.
// It returns the TLS config to serve.
func (c *Coordinator) watchCertificates(cfg *tls.Config, inv pki.InventorySource) *tls.Config {
	if r, ok := inv.(CertificateReporter); ok {
		r.ReportNewCertificates(c.recordCertificate)
	}
	if cfg.GetCertificate == nil {
		return cfg
	}
	get := cfg.GetCertificate
	var mu sync.Mutex
	last := ""
	cfg = cfg.Clone()
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := get(hello)
		if err != nil || cert == nil || len(cert.Certificate) == 0 {
			return cert, err
		}
		leaf := cert.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, err
			}
		}
		serial := pki.SerialString(leaf.SerialNumber)
		mu.Lock()
		isNew := serial != last
		last = serial
		mu.Unlock()
		if isNew {
			e := pki.Entry{Serial: serial, Role: pki.RoleCoordinator, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
			if id, err := pki.IdentityFromCertificate(leaf); err == nil {
				e.Name = id.Name
			}
			c.recordCertificate(e)
		}
		return cert, nil
	}
	return cfg
}
