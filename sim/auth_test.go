package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// expiredKit signs, with the federation's own CA key, a site certificate
// that expired yesterday.
func expiredKit(t *testing.T, caDir string) pki.Kit {
	t.Helper()
	caPEM := mustRead(t, filepath.Join(caDir, pki.CACertFile))
	block, _ := pem.Decode(caPEM)
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(mustRead(t, filepath.Join(caDir, "ca-key.pem")))
	var caKey any
	if caKey, err = x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
		if caKey, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("concord://site/old-site")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "old-site"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour), URIs: []*url.URL{u},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pki.Kit{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), CAPEM: caPEM}
}

// TestCoordinatorRefusesBadIdentities calls the running coordinator with
// each kind of bad identity and checks the call is refused with the right
// code before any handler runs.
func TestCoordinatorRefusesBadIdentities(t *testing.T) {
	dir := t.TempDir()
	f, err := Start(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	caPEM := mustRead(t, filepath.Join(f.CADir, pki.CACertFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	dialTLS := func(tc *tls.Config) pb.AdminClient {
		conn, err := grpc.NewClient(f.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return pb.NewAdminClient(conn)
	}
	dialKit := func(k pki.Kit) pb.AdminClient {
		tc, err := pki.ClientTLS(k.CAPEM, k.CertPEM, k.KeyPEM, "127.0.0.1")
		if err != nil {
			// ClientTLS refuses some bad kits itself; build the config by hand so
			// the coordinator is the one that refuses.
			cert, err2 := tls.X509KeyPair(k.CertPEM, k.KeyPEM)
			if err2 != nil {
				t.Fatalf("kit: %v / %v", err, err2)
			}
			tc = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
		}
		return dialTLS(tc)
	}

	otherCA := filepath.Join(dir, "other-ca")
	if err := pki.InitCA(otherCA, "some other consortium"); err != nil {
		t.Fatal(err)
	}
	foreign, err := pki.Issue(otherCA, pki.IssueRequest{Role: pki.RoleAdmin, Name: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the CA signs a certificate the consortium's inventory never
	// recorded: valid signature, unknown holder.
	rogueCA := filepath.Join(dir, "rogue-ca")
	if out, err := exec.Command("cp", "-r", f.CADir, rogueCA).CombinedOutput(); err != nil {
		t.Fatalf("copy CA: %v %s", err, out)
	}
	unknown, err := pki.Issue(rogueCA, pki.IssueRequest{Role: pki.RoleAdmin, Name: "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := f.Kit(pki.RoleAdmin, "former-admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Revoke(f.CADir, pki.RoleAdmin, "former-admin"); err != nil {
		t.Fatal(err)
	}
	site, err := f.Kit(pki.RoleSite, "st-marys")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		client pb.AdminClient
		want   []codes.Code
	}{
		// A failed TLS handshake reaches the client as Unavailable: the server
		// never sees a request (see package pki).
		{"no certificate", dialTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}), []codes.Code{codes.Unavailable, codes.Unauthenticated}},
		{"another CA", dialKit(foreign), []codes.Code{codes.Unavailable, codes.Unauthenticated}},
		{"expired certificate", dialKit(expiredKit(t, f.CADir)), []codes.Code{codes.Unavailable, codes.Unauthenticated}},
		{"unknown holder", dialKit(unknown), []codes.Code{codes.PermissionDenied}},
		{"revoked", dialKit(revoked), []codes.Code{codes.PermissionDenied}},
		{"site calling the admin service", dialKit(site), []codes.Code{codes.PermissionDenied}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.client.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec(t, "name: x\n")})
			code := status.Code(err)
			for _, w := range c.want {
				if code == w {
					return
				}
			}
			t.Fatalf("got %v (%v), want one of %v", code, err, c.want)
		})
	}
	jobs, err := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Jobs) != 0 {
		t.Fatalf("a refused caller created %d jobs", len(jobs.Jobs))
	}
}
