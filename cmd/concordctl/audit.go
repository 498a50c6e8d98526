package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/privacy/audit"
)

// auditCommand is `concordctl audit ...`: offline checks of exported audit
// bundles. It never calls the coordinator.
//
//	audit verify FILE [--trust FILE] [--checkpoint FILE]... [--json]
func auditCommand(g *globals) *cli.Command {
	return &cli.Command{Name: "audit", Synopsis: "verify an exported audit bundle offline",
		Help: "concordctl audit: the consortium's tamper-evident audit log.",
		Sub:  []*cli.Command{auditVerify(g)}}
}

// auditResult is the JSON of `audit verify --json`: the report when valid,
// the first failure when not.
type auditResult struct {
	Valid  bool          `json:"valid"`
	Error  string        `json:"error,omitempty"`
	Record *uint64       `json:"record,omitempty"` // the first failing record, when one is to blame
	Report *audit.Report `json:"report,omitempty"`
}

func auditVerify(g *globals) *cli.Command {
	return cli.Leaf(&cli.Command{Name: "verify", Args: "FILE [--trust FILE] [--checkpoint FILE]... [--json]",
		Synopsis: "check every record, signature and witness cosignature of an audit bundle",
		Help: `Verify an audit bundle (from the coordinator's audit export) without any network:
every record's signature and sequence number, the Merkle tree against the signed
checkpoint, the coordinator's signature and the sites' cosignatures.

--trust names the consortium's trust file (origin, log, witness and quorum
lines). Without it the keys inside the bundle are used, which proves only that
the bundle is self-consistent, not who wrote it.

--checkpoint names a checkpoint seen before (a site's witness state, or the
checkpoint of an earlier bundle); the bundle must extend it, so records deleted
from the end since then are found. Repeat it for several.

Exit status 0: valid. 1: invalid, with the first failing record named. 2: usage.`},
		func(c *cli.Command, args []string, stdout, stderr io.Writer) int {
			fs := c.NewFlagSet(stderr)
			file := fs.String("file", "", "the bundle `FILE` (or give it as the argument)")
			trustFile := fs.String("trust", "", "the consortium's trust `FILE`")
			var earlier stringList
			fs.Var(&earlier, "checkpoint", "a checkpoint `FILE` seen before (repeatable)")
			asJSON := fs.Bool("json", g.json, "print the result as JSON")
			pos, code, ok := c.Parse(fs, args, stdout, stderr)
			if !ok {
				return code
			}
			switch {
			case len(pos) == 1 && *file == "":
				*file = pos[0]
			case len(pos) > 1 || (len(pos) == 1 && *file != ""):
				return c.Usagef(stderr, "one bundle file at a time")
			case *file == "":
				return c.Usagef(stderr, "missing the bundle FILE")
			}
			var trust *audit.Trust
			if *trustFile != "" {
				t, err := audit.ReadTrustFile(*trustFile)
				if err != nil {
					return c.Fail(stderr, fmt.Errorf("trust file: %w", err))
				}
				trust = t
			}
			var opt audit.VerifyOptions
			for _, p := range earlier {
				cp, err := os.ReadFile(p)
				if err != nil {
					return c.Fail(stderr, fmt.Errorf("earlier checkpoint: %w", err))
				}
				opt.Earlier = append(opt.Earlier, cp)
			}
			rep, err := verifyBundleFile(*file, trust, opt)
			if *asJSON {
				res := auditResult{Valid: err == nil, Report: rep}
				if err != nil {
					res.Error = err.Error()
					var re *audit.RecordError
					if errors.As(err, &re) {
						res.Record = &re.Index
					}
				}
				if werr := writeJSON(stdout, res); werr != nil {
					return c.Fail(stderr, werr)
				}
			}
			if err != nil {
				fmt.Fprintf(stderr, "%s: %s: INVALID: %v\n", c.Path(), *file, err)
				return 1
			}
			if !*asJSON {
				printAuditReport(stdout, *file, rep)
			}
			return 0
		})
}

func verifyBundleFile(path string, trust *audit.Trust, opt audit.VerifyOptions) (*audit.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := audit.ReadBundle(f)
	if err != nil {
		return nil, err
	}
	return audit.Verify(b, trust, opt)
}

func printAuditReport(w io.Writer, file string, r *audit.Report) {
	scope := "the whole log"
	if !r.Whole {
		scope = fmt.Sprintf("job %s's records, each proved to be in the log of %d; this does not show that none of the job's records is missing", r.Job, r.Size)
	}
	fmt.Fprintf(w, "%s: valid: %d records of %s (%s)\n", file, r.Records, r.Origin, scope)
	cosigners := "none"
	if len(r.Cosigners) > 0 {
		names := make([]string, len(r.Cosigners))
		for i, id := range r.Cosigners {
			names[i], _, _ = strings.Cut(id, "+")
		}
		cosigners = strings.Join(names, ", ")
	}
	fmt.Fprintf(w, "checkpoint: size %d, root %s\n", r.Size, base64.StdEncoding.EncodeToString(r.Root))
	fmt.Fprintf(w, "witnessed by: %s (%d required)\n", cosigners, r.Quorum)
	if r.Records > 0 {
		fmt.Fprintf(w, "records from %s to %s\n", r.First.Format(time.RFC3339), r.Last.Format(time.RFC3339))
	}
	if len(r.Jobs) > 0 {
		fmt.Fprintf(w, "jobs: %s\n", strings.Join(r.Jobs, ", "))
	}
	if len(r.Consistent) > 0 {
		sizes := make([]string, len(r.Consistent))
		for i, s := range r.Consistent {
			sizes[i] = fmt.Sprint(s)
		}
		fmt.Fprintf(w, "extends the earlier checkpoints of sizes %s: nothing before them was changed or deleted\n", strings.Join(sizes, ", "))
	}
	if !r.Trusted {
		fmt.Fprintln(w, "WARNING: no --trust file: the keys inside the bundle were used, so this shows the bundle is\n"+
			"self-consistent, not who signed it. Verify with the consortium's trust file.")
	}
}
