package sim

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/audit/report"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

func export(t *testing.T, ctx context.Context, f *Federation, job, format string) []byte {
	t.Helper()
	data, _, err := exportAudit(ctx, f.Admin, job, format)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSitesWitnessTheAuditLog: after a job, the exported bundle verifies
// offline with both sites' cosignatures, a flipped byte is found, and the
// signed compliance report verifies against the log key in all formats.
func TestSitesWitnessTheAuditLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range []string{"st-marys", "riverside"} {
		if err := f.AddSite(s, SiteOptions{Data: siteagent.MemoryData{Data: blobs(24, 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: witnessed\npurpose: test of the audit trail\nlegal_basis: test data only\nrounds: 2\nmin_sites: 2\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\ntraining: {local_epochs: 1}\n")
	final := runJob(t, ctx, f, spec)
	if final.State != "completed" {
		t.Fatalf("job %s: %s", final.State, final.Reason)
	}
	data := export(t, ctx, f, final.Id, "bundle")
	b, err := audit.ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(b, nil, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("the exported bundle does not verify: %v", err)
	}
	if len(rep.Cosigners) != 2 || rep.Records < 10 {
		t.Fatalf("bundle: %d records, cosigned by %v", rep.Records, rep.Cosigners)
	}
	// Any changed byte inside a record is found.
	tb, err := audit.ParseBundle(bytes.Clone(data))
	if err != nil {
		t.Fatal(err)
	}
	tb.Records[3].Leaf[len(tb.Records[3].Leaf)/2] ^= 1
	if _, err := audit.Verify(tb, nil, audit.VerifyOptions{}); err == nil {
		t.Fatal("a flipped byte passed verification")
	}
	pub, _, err := audit.VerifierPublicKey(b.Keys.Log[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "csv", "html", "pdf"} {
		file := export(t, ctx, f, final.Id, format)
		r, err := report.ExtractAndVerify(file, pub)
		if err != nil {
			t.Fatalf("%s report: %v", format, err)
		}
		if r.Subject.JobID != final.Id || r.Purpose != "test of the audit trail" || len(r.Sites) != 2 || len(r.Checkpoint.Witnesses) != 2 {
			t.Fatalf("%s report: job %s, purpose %q, %d sites, %d witnesses", format, r.Subject.JobID, r.Purpose, len(r.Sites), len(r.Checkpoint.Witnesses))
		}
	}
	exports := 0
	for _, e := range allEvents(t, ctx, f, final.Id) {
		if e.Kind == "audit.exported" {
			exports++
		}
	}
	if exports != 5 {
		t.Errorf("%d exports recorded, want 5", exports)
	}
}

// TestCoordinatorRefusesABrokenAuditLog: an edited record stops the
// coordinator from starting, unless the operator overrides it, which is
// recorded.
func TestCoordinatorRefusesABrokenAuditLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := f.StopCoordinator(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(f.StatePath(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		leaves := tx.Bucket([]byte("audit")).Bucket([]byte("leaves"))
		k, v := leaves.Cursor().First()
		leaf := bytes.Clone(v)
		leaf[len(leaf)/3] ^= 0x20
		return leaves.Put(k, leaf)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.StartCoordinator("127.0.0.1:0", 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "audit log fails verification") {
		t.Fatalf("the coordinator started on an edited audit log: %v", err)
	}
	f.AcceptBrokenAuditLog = true
	if err := f.StartCoordinator("127.0.0.1:0", 100*time.Millisecond); err != nil {
		t.Fatalf("with the override: %v", err)
	}
}
