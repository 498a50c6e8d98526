package pki

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestKitOnDiskConnects(t *testing.T) {
	c := newConsortium(t)
	dir := filepath.Join(t.TempDir(), "kit")
	site := c.kits["site"]
	cfg, err := ConfigYAML(site, KitConfig{CoordinatorAddr: c.addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKit(dir, site, cfg); err != nil {
		t.Fatal(err)
	}
	for _, serverName := range []string{"", "localhost"} {
		tlsCfg, err := LoadClientTLS(dir, serverName)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		conn.Close()
		if err != nil {
			t.Errorf("server name %q: %v", serverName, err)
		}
	}
	if got := c.health.take(); len(got) != 2 || got[0].Name != "st-marys" {
		t.Errorf("handler saw %v", got)
	}
	// The coordinator certificate does not name other hosts.
	tlsCfg, _ := LoadClientTLS(dir, "evil.example.org")
	conn, _ := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("connected although the server name is not in the coordinator certificate")
	}
}

func TestTLSConfigRefusesUnusableKits(t *testing.T) {
	c := newConsortium(t)
	site, expired, other := c.kits["site"], c.kits["expired"], c.kits["other-ca"]
	tests := []struct {
		name           string
		ca, cert, key  []byte
		wantSubstrings string
	}{
		{"expired certificate", expired.CAPEM, expired.CertPEM, expired.KeyPEM, "expired"},
		{"certificate from another CA", site.CAPEM, other.CertPEM, other.KeyPEM, "does not chain"},
		{"key of another certificate", site.CAPEM, site.CertPEM, other.KeyPEM, "certificate and key"},
		{"no CA", nil, site.CertPEM, site.KeyPEM, "CA"},
		{"garbage", []byte("x"), []byte("y"), []byte("z"), "CA"},
	}
	for _, tc := range tests {
		if _, err := ClientTLS(tc.ca, tc.cert, tc.key, ""); err == nil || !strings.Contains(err.Error(), tc.wantSubstrings) {
			t.Errorf("ClientTLS %s: %v, want an error mentioning %q", tc.name, err, tc.wantSubstrings)
		}
		if _, err := ServerTLS(tc.ca, tc.cert, tc.key); err == nil {
			t.Errorf("ServerTLS %s: accepted", tc.name)
		}
	}
	if _, err := LoadServerTLS(t.TempDir()); err == nil {
		t.Error("LoadServerTLS of an empty folder succeeded")
	}
}
