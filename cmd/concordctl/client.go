package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/cmd/internal/config"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// ctlConfig is concordctl.yaml, from the admin's startup kit.
type ctlConfig struct {
	Coordinator string       `yaml:"coordinator"`
	TLS         pki.TLSFiles `yaml:"tls"`
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
	return c, nil
}

// client is a connection to the coordinator's Admin service.
type client struct {
	admin pb.AdminClient
	conn  *grpc.ClientConn
}

func (c *client) Close() { c.conn.Close() }

func connect(path string) (*client, error) {
	c, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	host := c.Coordinator
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	tc, err := c.TLS.Resolve(filepath.Dir(path)).Client(host)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(c.Coordinator, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, err
	}
	return &client{admin: pb.NewAdminClient(conn), conn: conn}, nil
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
