// Command concordctl is the consortium admin's CLI.
//
//	concordctl pki init|issue|revoke|list ...
//	concordctl sites list
//	concordctl jobs submit FILE | list | status ID | watch ID | abort ID [--reason TEXT]
//	concordctl models list [--job ID] [--all] | show VERSION | download VERSION [--out DIR]
//	concordctl models verify DIR | diff A B | get VERSION [--out FILE]
//	concordctl events [--job ID] [--after SEQ] [--limit N]
//	concordctl version
//
// The commands that call the coordinator read its address and the admin's
// certificate from concordctl.yaml (--config, or $CONCORD_CONFIG), print
// tables for people and JSON with --json.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/concord-fl/concord/cmd/internal/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const intro = `concordctl: administer a Concord consortium.

Global flags, before the command: --config FILE (default ./concordctl.yaml or
$CONCORD_CONFIG; it comes in the admin startup kit from
'concordctl pki issue --admin NAME') and --json.`

// globals are the flags given before the command; the commands that call
// the coordinator take them as their own flags' defaults.
type globals struct {
	config string
	json   bool
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{}
	fs := flag.NewFlagSet("concordctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	fs.StringVar(&g.config, "config", defaultConfig(), "concordctl config file")
	fs.BoolVar(&g.json, "json", false, "print JSON instead of tables")
	version := fs.Bool("version", false, "print the version")
	cmds := g.commands()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cli.Dispatch("concordctl", intro, cmds, []string{"help"}, stdout, stderr)
		}
		fmt.Fprintln(stderr, "usage: concordctl [--config FILE] [--json] COMMAND [ARGS]")
		return 2
	}
	rest := fs.Args()
	if *version {
		rest = append([]string{"version"}, rest...)
	}
	return cli.Dispatch("concordctl", intro, cmds, rest, stdout, stderr)
}

func (g *globals) commands() []*cli.Command {
	return []*cli.Command{
		pkiCommand(g),
		privacyCommand(g),
		auditCommand(g),
		{Name: "sites", Synopsis: "the consortium's sites", Sub: []*cli.Command{g.sitesList(), g.sitesDrift()}},
		{Name: "jobs", Synopsis: "submit, list, follow and abort training jobs", Sub: []*cli.Command{
			g.jobsSubmit(), g.jobsList(), g.jobsStatus(), g.jobsWatch(), g.jobsAbort(), g.jobsApprove(), g.jobsFolds()}},
		g.modelsCommand(),
		g.events(),
		g.backupCommand(),
		g.versionCommand(),
	}
}

// remote is a command that calls the coordinator: it declares the client
// flags and the command's own (extra), checks that nargs positional
// arguments were given, connects and runs do.
func (g *globals) remote(c *cli.Command, nargs int, extra func(fs *flag.FlagSet),
	do func(ctx context.Context, cl *client, asJSON bool, args []string, stdout io.Writer) error) *cli.Command {
	c.Run = func(args []string, stdout, stderr io.Writer) int {
		fs := c.NewFlagSet(stderr)
		cf := g.clientFlags(fs)
		if extra != nil {
			extra(fs)
		}
		pos, code, ok := c.Parse(fs, args, stdout, stderr)
		if !ok {
			return code
		}
		if len(pos) != nargs {
			if len(pos) > nargs {
				return c.Usagef(stderr, "unexpected argument %q", pos[nargs])
			}
			return c.Usagef(stderr, "missing argument")
		}
		cl, err := connect(*cf.config)
		if err != nil {
			return c.Fail(stderr, err)
		}
		defer cl.Close()
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		if err := do(ctx, cl, *cf.json, pos, stdout); err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", c.Path(), explain(err))
			return 1
		}
		return 0
	}
	return c
}
