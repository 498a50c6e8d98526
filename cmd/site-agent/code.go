package main

import (
	"fmt"
	"io"
	"os/user"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// The hospital's approval of custom model code: `models approve-code` and
// `models revoke-code` (site-agent/codeapproval.go keeps the records).

const approveCodeHelp = `Approve a consortium's custom PyTorch model, by the SHA-256 its jobs pin
(model.code.sha256), for training on this site's external trainer. Review the
module first: the trainer imports it and runs it with the trainer's privileges
(deploy/trainer/README.md, "Custom models"). Check the hash of the file you
reviewed with 'sha256sum net.py'. The approval, who and when, is kept in
state_dir/code.db with a hash-chained log; it takes effect at the next task,
without restarting the agent. A job shipping any other file is refused.`

func codeCommands() []*cli.Command {
	return []*cli.Command{
		cli.Leaf(&cli.Command{Name: "approve-code", Args: "SHA256 [--config agent.yaml] [--by NAME]",
			Synopsis: "approve a custom PyTorch model's code, by hash, for training here", Help: approveCodeHelp}, modelsApproveCode),
		cli.Leaf(&cli.Command{Name: "revoke-code", Args: "SHA256 [--config agent.yaml] [--by NAME]",
			Synopsis: "withdraw the approval of a custom model's code; later tasks shipping it are refused"}, modelsRevokeCode),
	}
}

func modelsApproveCode(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	return changeCode(c, args, stdout, stderr, siteagent.ApproveCode, "approved")
}

func modelsRevokeCode(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	return changeCode(c, args, stdout, stderr, siteagent.RevokeCode, "revoked the approval of")
}

func changeCode(c *cli.Command, args []string, stdout, stderr io.Writer, change func(dir, sha, by string, now time.Time) error, did string) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file`")
	by := fs.String("by", "", "who decides (default: the user running the command)")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.Usagef(stderr, "give one SHA256 (the job's model.code.sha256)")
	}
	fc, abs, err := readConfig(*configPath)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if fc.StateDir == "" {
		return c.Fail(stderr, fmt.Errorf("config %s has no state_dir", *configPath))
	}
	who := *by
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	if who == "" {
		return c.Usagef(stderr, "say who decides with --by NAME")
	}
	if err := change(abs(fc.StateDir), pos[0], who, time.Now()); err != nil {
		return c.Fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s custom model code sha256 %s by %s\n", did, pos[0], who)
	return 0
}

// printCodeApprovals is the custom-code part of `models list`.
func printCodeApprovals(w io.Writer, aps []siteagent.CodeApproval, log []siteagent.CodeEvent) {
	fmt.Fprintf(w, "\ncustom model code approved for training: %d (approvals log: %d records, chain intact)\n", len(aps), len(log))
	for _, a := range aps {
		fmt.Fprintf(w, "  sha256 %s  by %s at %s\n", a.SHA256, a.By, a.At.Format(time.RFC3339))
	}
}
