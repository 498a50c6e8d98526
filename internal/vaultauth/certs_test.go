package vaultauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/pki"
)

func mkCert(t *testing.T, tmpl, parent *x509.Certificate, pub, signer any) (*x509.Certificate, string) {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestBuildCert assembles what Vault's pki/sign returns: the leaf with the
// intermediate for the handshake, the self-signed root as trust, and
// refuses a certificate for another key or another identity.
func TestBuildCert(t *testing.T) {
	key := func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	rootKey, interKey, leafKey, otherKey := key(), key(), key(), key()
	now := time.Now()
	ca := func(n int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	rootTmpl := ca(1, "root")
	root, rootPEM := mkCert(t, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	inter, interPEM := mkCert(t, ca(2, "inter"), root, &interKey.PublicKey, rootKey)
	site := pki.Identity{Role: pki.RoleSite, Name: "st-marys"}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabcdef), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(2 * time.Minute),
		URIs: []*url.URL{site.URI()}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	_, leafPEM := mkCert(t, leafTmpl, inter, &leafKey.PublicKey, interKey)

	cert, roots, issued, err := buildCert(leafPEM, leafKey, []string{interPEM, rootPEM}, site)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 || issued.Identity.Serial != "abcdef" || issued.Identity.Name != "st-marys" {
		t.Fatalf("chain of %d, issued %+v", len(cert.Certificate), issued)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool(inter), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify against the roots: %v", err)
	}
	if roots.Equal(pool(inter)) {
		t.Fatal("the intermediate became a trust root")
	}
	for _, tc := range []struct {
		key   *ecdsa.PrivateKey
		chain []string
		want  pki.Identity
		err   string
	}{
		{otherKey, []string{interPEM, rootPEM}, site, "not for the key"},
		{leafKey, []string{interPEM, rootPEM}, pki.Identity{Role: pki.RoleSite, Name: "st-johns"}, "asked for site/st-johns"},
		{leafKey, nil, site, "names no issuing CA"},
		{leafKey, []string{rootPEM}, site, "does not chain"},
		{leafKey, []string{"junk"}, site, "not PEM"},
	} {
		if _, _, _, err := buildCert(leafPEM, tc.key, tc.chain, tc.want); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("error %v, want %q", err, tc.err)
		}
	}
}

func pool(cs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}
