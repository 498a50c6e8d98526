package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	siteagent "github.com/concord-fl/concord/site-agent"
)

func sentCmd(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	dir, asJSON, code, ok := stateDirArgs(c, args, "print {\"sent\": [...]} as JSON", stdout, stderr)
	if !ok {
		return code
	}
	sent, err := siteagent.ReadSent(dir, 2*time.Second)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(map[string]any{"sent": sent}); err != nil {
			return c.Fail(stderr, err)
		}
		return 0
	}
	if len(sent) == 0 {
		fmt.Fprintln(stdout, "nothing sent yet")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tJOB\tROUND\tKIND\tBYTES\tSHA-256\tRECEIPT")
	for _, e := range sent {
		receipt := "-"
		switch {
		case e.Countersigned:
			receipt = "countersigned"
		case e.Receipt:
			receipt = "signed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", e.Time.Format(time.RFC3339), e.JobID, e.Round, e.Kind, e.Bytes, e.SHA256[:16]+"…", receipt)
	}
	tw.Flush()
	return 0
}
