package extrainer

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
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and returns the
// paths of the server's files and a client certificate signed by the CA.
func testPKI(t *testing.T) (dir string, pool *x509.CertPool, client tls.Certificate) {
	t.Helper()
	dir = t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test site CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	write("server.pem", "CERTIFICATE", srvDER)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	write("server-key.pem", "EC PRIVATE KEY", kb)
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth, nil)
	client = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return dir, pool, client
}

// TestTLSToRemoteTrainer runs the trainer as on a separate GPU node: bound to
// all interfaces, TLS with client certificates required.
func TestTLSToRemoteTrainer(t *testing.T) {
	long(t)
	py := python(t)

	var stderr syncBuffer
	cmd, _, err := launch(py, &stderr, "--listen", "0.0.0.0:0")
	stop(cmd)
	if err == nil || !strings.Contains(stderr.String(), "refusing to listen") {
		t.Errorf("insecure listen on 0.0.0.0: %v; stderr %q", err, stderr.String())
	}

	dir, pool, client := testPKI(t)
	var stderr2 syncBuffer
	cmd, addr, err := launch(py, &stderr2, "--listen", "0.0.0.0:0",
		"--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server-key.pem"),
		"--tls-client-ca", filepath.Join(dir, "ca.pem"))
	t.Cleanup(func() { stop(cmd) })
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	target := net.JoinHostPort("127.0.0.1", port)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, err := Dial(ctx, Config{Address: target, TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("info over mutual TLS: %v", err)
	}
	if !info.Supports("concord.cnn/2", "cnn") {
		t.Errorf("info %+v", info)
	}

	anon, err := Dial(ctx, Config{Address: target, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	short, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := anon.Info(short); err == nil {
		t.Error("a client without a certificate was served")
	}
}

// TestUnixSocket runs the trainer as on the agent's own host, on a unix
// socket, which needs no TLS.
func TestUnixSocket(t *testing.T) {
	long(t)
	py := python(t)
	sock := "unix://" + filepath.Join(t.TempDir(), "trainer.sock")
	var stderr syncBuffer
	cmd, addr, err := launch(py, &stderr, "--listen", sock)
	t.Cleanup(func() { stop(cmd) })
	if err != nil {
		t.Fatal(err)
	}
	if addr != sock {
		t.Errorf("trainer reports %q, want %q", addr, sock)
	}
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("info over %s: %v", addr, err)
	}
}
