package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/audit/report"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// auditCommand is `concordctl audit ...`: offline checks of exported audit
// bundles. It never calls the coordinator.
//
//	audit verify FILE [--trust FILE] [--checkpoint FILE]... [--json]
func auditCommand(g *globals) *cli.Command {
	return &cli.Command{Name: "audit", Synopsis: "export and verify the audit log and compliance reports",
		Help: "concordctl audit: the consortium's tamper-evident audit log and the reports built from it.",
		Sub:  []*cli.Command{auditVerify(g), g.auditExport()}}
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
			if data, err := os.ReadFile(*file); err == nil && !looksLikeBundle(data) {
				return verifyReportFile(c, *file, data, trust, *asJSON, stdout, stderr)
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

// looksLikeBundle tells an audit bundle from a report file.
func looksLikeBundle(data []byte) bool {
	return bytes.Contains(data[:min(len(data), 4096)], []byte(`"format"`)) &&
		bytes.Contains(data[:min(len(data), 4096)], []byte(audit.BundleFormat))
}

// verifyReportFile checks a compliance report's signature (any of its four
// formats) with the log key of the trust file, and that what it shows is
// what was signed.
func verifyReportFile(c *cli.Command, file string, data []byte, trust *audit.Trust, asJSON bool, stdout, stderr io.Writer) int {
	if trust == nil || len(trust.Logs) == 0 {
		return c.Usagef(stderr, "%s is not an audit bundle; to verify it as a compliance report give --trust FILE (the consortium's trust file names the key that signs reports)", file)
	}
	var rep *report.Report
	var err error
	for _, k := range trust.Logs {
		pub, id, kerr := audit.VerifierPublicKey(k)
		if kerr != nil {
			return c.Fail(stderr, kerr)
		}
		if rep, err = report.ExtractAndVerify(data, pub); err == nil || errors.Is(err, report.ErrVisibleMismatch) {
			if rep != nil && rep.Signature != nil && rep.Signature.KeyID != id {
				err = fmt.Errorf("signed by %s, which is not the trust file's log key %s", rep.Signature.KeyID, id)
			}
			break
		}
	}
	if asJSON {
		res := map[string]any{"valid": err == nil, "kind": "report"}
		if err != nil {
			res["error"] = err.Error()
		}
		if rep != nil {
			res["job_id"], res["generated_by"], res["tree_size"] = rep.Subject.JobID, rep.GeneratedBy, rep.Checkpoint.TreeSize
		}
		if werr := writeJSON(stdout, res); werr != nil {
			return c.Fail(stderr, werr)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: INVALID report: %v\n", c.Path(), file, err)
		return 1
	}
	if !asJSON {
		fmt.Fprintf(stdout, "%s: valid compliance report of job %s, signed by %s; built from audit checkpoint %s size %d (%d witnesses)\n",
			file, rep.Subject.JobID, rep.Signature.KeyID, rep.Checkpoint.Origin, rep.Checkpoint.TreeSize, len(rep.Checkpoint.Witnesses))
	}
	return 0
}

func (g *globals) auditExport() *cli.Command {
	var job, model, format, out *string
	return g.remote(&cli.Command{Name: "export", Args: "--job ID | --model VERSION [--format bundle|json|html|pdf|csv] [--out FILE]",
		Synopsis: "export the audit bundle or a signed compliance report",
		Help: `Export from the coordinator, as an admin or auditor:
  --format bundle (default)   the audit log (the job's records with inclusion proofs, or the
                              whole log without --job), for concordctl audit verify
  --format json|html|pdf|csv  the job's compliance report, signed with the coordinator's audit key
The export itself is recorded in the audit log; nothing else changes.`}, 0,
		func(fs *flag.FlagSet) {
			job = fs.String("job", "", "the job `ID`")
			model = fs.String("model", "", "a model `VERSION` (its job)")
			format = fs.String("format", "bundle", "bundle, json, html, pdf or csv")
			out = fs.String("out", "", "output `FILE` (default: the name the coordinator gives)")
		},
		func(ctx context.Context, cl *client, asJSON bool, _ []string, stdout io.Writer) error {
			if *job != "" && *model != "" {
				return errors.New("give --job or --model, not both")
			}
			stream, err := cl.admin.ExportAudit(ctx, &pb.ExportAuditRequest{JobId: *job, ModelVersion: *model, Format: *format})
			if err != nil {
				return err
			}
			var data []byte
			name := ""
			for {
				ch, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				if name == "" {
					name = ch.FileName
				}
				data = append(data, ch.Data...)
			}
			path := *out
			if path == "" {
				path = filepath.Base(name)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			if asJSON {
				return writeJSON(stdout, map[string]any{"file": path, "format": *format, "bytes": len(data), "sha256": hex.EncodeToString(sum[:])})
			}
			fmt.Fprintf(stdout, "wrote %s (%s, %d bytes, sha256 %x); check it with: concordctl audit verify %s --trust TRUST_FILE\n",
				path, *format, len(data), sum, path)
			return nil
		})
}
