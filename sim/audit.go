package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/audit/report"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// writeAudit exports the job's audit bundle and its compliance report in
// every format into out/audit, verifies the bundle offline and each report
// against the log key, and fills the summary's privacy and audit fields.
func writeAudit(ctx context.Context, fed *Federation, out, jobID string, sum *Summary) error {
	dir := filepath.Join(out, "audit")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, name, err := exportAudit(ctx, fed.Admin, jobID, "bundle")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return err
	}
	sum.Files = append(sum.Files, filepath.Join("audit", name))
	b, err := audit.ParseBundle(data)
	if err != nil {
		return err
	}
	if _, err := audit.Verify(b, nil, audit.VerifyOptions{}); err != nil {
		// The run's results stand; the summary says what failed.
		sum.AuditError = "the exported audit bundle does not verify: " + err.Error()
		return nil
	}
	pub, _, err := audit.VerifierPublicKey(b.Keys.Log[0])
	if err != nil {
		return err
	}
	for _, format := range []string{"json", "csv", "html", "pdf"} {
		data, name, err := exportAudit(ctx, fed.Admin, jobID, format)
		if err != nil {
			return err
		}
		r, err := report.ExtractAndVerify(data, pub)
		if err != nil {
			return fmt.Errorf("%s report: %w", format, err)
		}
		for _, sb := range r.Privacy.Sites {
			if n := len(sb.Rounds); n > 0 && sb.Rounds[n-1].Cumulative > sum.Epsilon {
				sum.Epsilon, sum.Delta, sum.DPLevel = sb.Rounds[n-1].Cumulative, r.Privacy.Delta, string(r.Privacy.Level)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
		sum.Files = append(sum.Files, filepath.Join("audit", name))
	}
	sum.AuditVerified = true
	return nil
}

// exportAudit fetches a job's audit bundle or compliance report and the
// file name the coordinator gives it.
func exportAudit(ctx context.Context, admin pb.AdminClient, jobID, format string) ([]byte, string, error) {
	stream, err := admin.ExportAudit(ctx, &pb.ExportAuditRequest{JobId: jobID, Format: format})
	if err != nil {
		return nil, "", err
	}
	var data []byte
	name := ""
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return data, name, nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("export %s: %w", format, err)
		}
		if name == "" {
			name = filepath.Base(ch.FileName)
		}
		data = append(data, ch.Data...)
	}
}
