package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/cmd/internal/config"
	"github.com/concord-fl/concord/internal/vaultauth"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// ctlConfig is concordctl.yaml, from the admin's startup kit.
type ctlConfig struct {
	Coordinator string       `yaml:"coordinator"`
	TLS         pki.TLSFiles `yaml:"tls"`
	// Vault, with pki set, replaces tls: each run logs in with AppRole
	// (spending the single-use secret id) and gets a short-lived admin
	// certificate.
	Vault config.Vault `yaml:"vault"`
}

func defaultConfig() string {
	if p := os.Getenv("CONCORD_CONFIG"); p != "" {
		return p
	}
	return "concordctl.yaml"
}

// loadConfig reads concordctl.yaml, refusing keys it does not know (with
// their line) so that a misspelt key is not silently ignored.
func loadConfig(path string) (ctlConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ctlConfig{}, fmt.Errorf("read %s: %w (pass --config, set CONCORD_CONFIG, or run from the admin kit folder)", path, err)
	}
	var c ctlConfig
	if err := config.Decode(data, &c); err != nil {
		return ctlConfig{}, fmt.Errorf("config %s: %w", path, err)
	}
	if c.Coordinator == "" {
		return ctlConfig{}, fmt.Errorf("config %s: coordinator (HOST:PORT) is required", path)
	}
	if err := c.Vault.Check(pki.RoleAdmin, c.TLS); err != nil {
		return ctlConfig{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// client is a connection to the coordinator's Admin service.
type client struct {
	admin pb.AdminClient
	conn  *grpc.ClientConn
	stop  func()
}

func (c *client) Close() {
	c.conn.Close()
	c.stop()
}

func connect(path string) (*client, error) {
	c, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	host := c.Coordinator
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	tc, stop, err := c.clientTLS(filepath.Dir(path), host)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(c.Coordinator, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		stop()
		return nil, err
	}
	return &client{admin: pb.NewAdminClient(conn), conn: conn, stop: stop}, nil
}

// clientTLS is the kit's certificate, or one from Vault; stop ends the
// Vault session.
func (c ctlConfig) clientTLS(base, host string) (*tls.Config, func(), error) {
	if !c.Vault.UsesPKI() {
		tc, err := c.TLS.Resolve(base).Client(host)
		return tc, func() {}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Info: the admin keeps a record of each certificate it was issued (serial).
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	vc, err := c.Vault.Dial(ctx, base, logger)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	stop := func() { cancel(); vc.Close() }
	certs, err := vaultauth.StartCerts(ctx, vc, c.Vault.CertRequest(pki.RoleAdmin), nil)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return certs.ClientTLS(host), stop, nil
}

// clientFlags are the flags of every command that calls the coordinator.
type clientFlags struct {
	config *string
	json   *bool
}

func (g *globals) clientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		config: fs.String("config", g.config, "concordctl config `file` (from the admin kit)"),
		json:   fs.Bool("json", g.json, "print JSON (snake_case keys, numbers as numbers) instead of tables"),
	}
}

// explain turns a gRPC error into a sentence that says what to do.
func explain(err error) string {
	s, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch s.Code() {
	case codes.Unavailable:
		return "cannot reach the coordinator (" + s.Message() + "): check the address in concordctl.yaml and that the coordinator is running"
	case codes.Unauthenticated:
		return "the coordinator did not accept this certificate (" + s.Message() + "): use the admin kit issued by your consortium CA"
	case codes.PermissionDenied:
		return s.Message() + ": this certificate's role may not do that; ask the consortium CA for an admin kit"
	}
	return s.Message()
}
