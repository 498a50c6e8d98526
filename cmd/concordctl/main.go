// Command concordctl is the consortium admin's CLI.
//
//	concordctl pki init|issue|revoke|list ...
//	concordctl sites list
//	concordctl jobs submit FILE | list | status ID | watch ID | abort ID [--reason TEXT]
//	concordctl models list [--job ID] | get VERSION [--out FILE]
//	concordctl events [--job ID]
//
// Every command reads the coordinator address and the admin's certificate
// from concordctl.yaml (--config, or $CONCORD_CONFIG), prints tables for
// people and JSON with --json.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one `concordctl NOUN VERB`.
type command struct {
	path     string // e.g. "jobs submit"
	args     string
	synopsis string
	run      func(ctx context.Context, env *env, args []string) error
}

type env struct {
	admin  pb.AdminClient
	out    io.Writer
	json   bool
	fs     *flag.FlagSet
	closer func()
}

var commands = []command{
	{"sites list", "", "list sites: connected or not, agent version, last seen, examples, current task", sitesList},
	{"jobs submit", "FILE", "submit a job described in a YAML file", jobsSubmit},
	{"jobs list", "", "list jobs", jobsList},
	{"jobs status", "ID", "show a job and its rounds", jobsStatus},
	{"jobs watch", "ID", "follow a job live until it ends", jobsWatch},
	{"jobs abort", "ID", "abort a running job (--reason says why; recorded in the audit trail)", jobsAbort},
	{"models list", "", "list published model versions (--job ID to filter)", modelsList},
	{"models get", "VERSION", "download a model version's weights (--out FILE, default VERSION.f32) and layout (FILE.layout.json)", modelsGet},
	{"events", "", "list the coordinator's event log (--job ID to filter)", eventsList},
}

const usage = `concordctl: administer a Concord consortium.

usage: concordctl [--config FILE] [--json] COMMAND [ARGS]

commands:
  pki init|issue|revoke|list   create the consortium CA and startup kits (see concordctl pki help)
`

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.path+" "+c.args), c.synopsis)
	}
	fmt.Fprint(w, "\nThe config file (default ./concordctl.yaml or $CONCORD_CONFIG) comes in the admin startup kit from `concordctl pki issue --admin NAME`.\n")
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "pki" {
		return pki.Command(args[1:], stdout, stderr)
	}
	global := flag.NewFlagSet("concordctl", flag.ContinueOnError)
	global.SetOutput(stderr)
	configPath := global.String("config", defaultConfig(), "concordctl config file")
	asJSON := global.Bool("json", false, "print JSON instead of tables")
	global.Usage = func() { printUsage(stderr) }
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := global.Args()
	if len(rest) == 0 || rest[0] == "help" {
		printUsage(stderr)
		if len(rest) == 0 {
			return 2
		}
		return 0
	}
	var cmd *command
	var cmdArgs []string
	for i := range commands {
		words := strings.Fields(commands[i].path)
		if len(rest) >= len(words) && strings.Join(rest[:len(words)], " ") == commands[i].path {
			cmd, cmdArgs = &commands[i], rest[len(words):]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "concordctl: unknown command %q\n\n", strings.Join(rest, " "))
		printUsage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("concordctl "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool("json", *asJSON, "print JSON")
	fs.String("job", "", "job ID")
	fs.String("reason", "", "reason (jobs abort)")
	fs.String("out", "", "output file (models get)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: concordctl %s %s\n\n%s\n", cmd.path, cmd.args, cmd.synopsis)
	}
	// Flags may come before or after the positional arguments.
	var positional []string
	for len(cmdArgs) > 0 {
		if err := fs.Parse(cmdArgs); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		cmdArgs = fs.Args()[1:]
	}
	e, err := connect(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "concordctl: %v\n", err)
		return 1
	}
	defer e.closer()
	e.out, e.fs = stdout, fs
	e.json = fs.Lookup("json").Value.String() == "true"
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := cmd.run(ctx, e, positional); err != nil {
		fmt.Fprintf(stderr, "concordctl %s: %s\n", cmd.path, explain(err))
		return 1
	}
	return 0
}

func defaultConfig() string {
	if p := os.Getenv("CONCORD_CONFIG"); p != "" {
		return p
	}
	return "concordctl.yaml"
}

// explain turns a gRPC error into a sentence that says what to do.
func explain(err error) string {
	s, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch s.Code().String() {
	case "Unavailable":
		return "cannot reach the coordinator (" + s.Message() + "): check the address in concordctl.yaml and that the coordinator is running"
	case "Unauthenticated":
		return "the coordinator did not accept this certificate (" + s.Message() + "): use the admin kit issued by your consortium CA"
	case "PermissionDenied":
		return s.Message() + ": this certificate's role may not do that; ask the consortium CA for an admin kit"
	}
	return s.Message()
}

type ctlConfig struct {
	Coordinator string       `yaml:"coordinator"`
	TLS         pki.TLSFiles `yaml:"tls"`
}

func connect(path string) (*env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (pass --config, set CONCORD_CONFIG, or run from the admin kit folder)", path, err)
	}
	var c ctlConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	host := c.Coordinator
	if h, _, err := splitHost(host); err == nil {
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
	return &env{admin: pb.NewAdminClient(conn), closer: func() { conn.Close() }}, nil
}

func flagValue(e *env, name string) string { return e.fs.Lookup(name).Value.String() }

func need(args []string, n int, what string) error {
	if len(args) != n {
		return fmt.Errorf("expected %s", what)
	}
	return nil
}

func ago(unix int64) string {
	if unix <= 0 {
		return "never"
	}
	d := time.Since(time.Unix(unix, 0)).Round(time.Second)
	return d.String() + " ago"
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
