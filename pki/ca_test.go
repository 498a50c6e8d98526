package pki

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestInitCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir, ""); err != nil {
		t.Fatal(err)
	}
	ca, err := loadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.cert.Subject.CommonName != DefaultCACommonName || !ca.cert.IsCA || !ca.cert.MaxPathLenZero {
		t.Errorf("CA certificate: CN %q IsCA %v", ca.cert.Subject.CommonName, ca.cert.IsCA)
	}
	if life := ca.cert.NotAfter.Sub(ca.cert.NotBefore); life < CAValidity || life > CAValidity+time.Hour {
		t.Errorf("CA validity %s, want 10 years", life)
	}
	st, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem mode %v, want 0600", st.Mode().Perm())
	}
	inv, err := LoadInventory(filepath.Join(dir, InventoryFile))
	if err != nil || len(inv.Certificates) != 0 {
		t.Errorf("fresh inventory: %v, %v", inv, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err := InitCA(dir, "again"); !errors.Is(err, ErrCAExists) {
		t.Errorf("second InitCA: %v, want ErrCAExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !slices.Equal(before, after) {
		t.Error("second InitCA changed the CA key")
	}
}

func TestIssue(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(dir, "test"); err != nil {
		t.Fatal(err)
	}
	ca, _ := loadCA(dir)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	tests := []struct {
		req     IssueRequest
		usage   x509.ExtKeyUsage
		life    time.Duration
		dnsName string
	}{
		{IssueRequest{Role: RoleSite, Name: "st-marys"}, x509.ExtKeyUsageClientAuth, DefaultLeafValidity, ""},
		{IssueRequest{Role: RoleAdmin, Name: "alice", Validity: 90 * 24 * time.Hour}, x509.ExtKeyUsageClientAuth, 90 * 24 * time.Hour, ""},
		{IssueRequest{Role: RoleAuditor, Name: "a1"}, x509.ExtKeyUsageClientAuth, DefaultLeafValidity, ""},
		{IssueRequest{Role: RoleCoordinator, Name: "coordinator", Hosts: []string{"Coord.Example.org", "10.0.0.5", "::1"}},
			x509.ExtKeyUsageServerAuth, DefaultLeafValidity, "coord.example.org"},
	}
	for _, tc := range tests {
		t.Run(string(tc.req.Role), func(t *testing.T) {
			kit, err := Issue(dir, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			certs, err := parseCertificates(kit.CertPEM)
			if err != nil {
				t.Fatal(err)
			}
			cert := certs[0]
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tc.usage}, DNSName: tc.dnsName}); err != nil {
				t.Errorf("verify: %v", err)
			}
			id, err := IdentityFromCertificate(cert)
			if err != nil {
				t.Fatal(err)
			}
			if id != (Identity{Role: tc.req.Role, Name: tc.req.Name, Serial: kit.Serial}) {
				t.Errorf("identity %+v, kit serial %s", id, kit.Serial)
			}
			if got := cert.NotAfter.Sub(cert.NotBefore) - clockSkewAllowance; got < tc.life-time.Minute || got > tc.life+time.Minute {
				t.Errorf("validity %s, want %s", got, tc.life)
			}
			if _, err := parseECKey(kit.KeyPEM); err != nil {
				t.Error(err)
			}
			inv, _ := LoadInventory(filepath.Join(dir, InventoryFile))
			e, err := inv.Lookup(kit.Serial)
			if err != nil || e.Role != tc.req.Role || e.Name != tc.req.Name || e.Revoked {
				t.Errorf("inventory entry %+v, %v", e, err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, lockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}

func TestIssueRejects(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(dir, "test"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		req  IssueRequest
		want error
	}{
		{"upper-case name", dir, IssueRequest{Role: RoleSite, Name: "St-Marys"}, ErrInvalidIdentity},
		{"slash in name", dir, IssueRequest{Role: RoleSite, Name: "a/b"}, ErrInvalidIdentity},
		{"leading hyphen", dir, IssueRequest{Role: RoleSite, Name: "-a"}, ErrInvalidIdentity},
		{"empty name", dir, IssueRequest{Role: RoleSite}, ErrInvalidIdentity},
		{"64 characters", dir, IssueRequest{Role: RoleSite, Name: string(make([]byte, 64))}, ErrInvalidIdentity},
		{"unknown role", dir, IssueRequest{Role: "root", Name: "x"}, ErrInvalidIdentity},
		{"site with hosts", dir, IssueRequest{Role: RoleSite, Name: "x", Hosts: []string{"a.org"}}, nil},
		{"coordinator without hosts", dir, IssueRequest{Role: RoleCoordinator, Name: "c"}, nil},
		{"bad host", dir, IssueRequest{Role: RoleCoordinator, Name: "c", Hosts: []string{"a b"}}, nil},
		{"negative validity", dir, IssueRequest{Role: RoleSite, Name: "x", Validity: -time.Hour}, nil},
		{"outlives the CA", dir, IssueRequest{Role: RoleSite, Name: "x", Validity: 11 * CAValidity / 10}, nil},
		{"no CA", t.TempDir(), IssueRequest{Role: RoleSite, Name: "x"}, ErrNoCA},
		{"no CA directory", filepath.Join(dir, "missing"), IssueRequest{Role: RoleSite, Name: "x"}, ErrNoCA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Issue(tc.dir, tc.req)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	inv, _ := LoadInventory(filepath.Join(dir, InventoryFile))
	if len(inv.Certificates) != 0 {
		t.Errorf("rejected requests were recorded: %v", inv.Certificates)
	}
}

func TestRevokeAndLock(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(dir, "test"); err != nil {
		t.Fatal(err)
	}
	a, _ := Issue(dir, IssueRequest{Role: RoleSite, Name: "st-marys"})
	b, _ := Issue(dir, IssueRequest{Role: RoleSite, Name: "st-marys"}) // renewal
	c, _ := Issue(dir, IssueRequest{Role: RoleAdmin, Name: "st-marys"})
	if err := Revoke(dir, RoleSite, "st-marys"); err != nil {
		t.Fatal(err)
	}
	inv, _ := LoadInventory(filepath.Join(dir, InventoryFile))
	for serial, revoked := range map[string]bool{a.Serial: true, b.Serial: true, c.Serial: false} {
		e, _ := inv.Lookup(serial)
		if e.Revoked != revoked || (e.RevokedAt != nil) != revoked {
			t.Errorf("%s %s: revoked %v at %v, want %v", e.Role, serial, e.Revoked, e.RevokedAt, revoked)
		}
	}
	if err := Revoke(dir, RoleSite, "st-marys"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: %v, want ErrNotFound", err)
	}
	if err := Revoke(dir, RoleSite, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v, want ErrNotFound", err)
	}

	if err := os.WriteFile(filepath.Join(dir, lockFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Issue(dir, IssueRequest{Role: RoleSite, Name: "x"}); !errors.Is(err, ErrLocked) {
		t.Errorf("issue while locked: %v, want ErrLocked", err)
	}
	if err := Revoke(dir, RoleAdmin, "st-marys"); !errors.Is(err, ErrLocked) {
		t.Errorf("revoke while locked: %v, want ErrLocked", err)
	}
}

func TestLoadCARejectsMismatchedKey(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := errors.Join(InitCA(a, "a"), InitCA(b, "b")); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(b, CAKeyFile))
	if err := os.WriteFile(filepath.Join(a, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Issue(a, IssueRequest{Role: RoleSite, Name: "x"}); !errors.Is(err, ErrNoCA) {
		t.Errorf("issue with another CA's key: %v, want ErrNoCA", err)
	}
}
