package sim

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestWitnessAlarmReachesTheAdmins: the coordinator's audit history is
// replaced (same key, other records) after a site witnessed it. The site,
// offered a checkpoint that does not extend the one it cosigned, refuses,
// keeps the alarm in its own state and sends it; the coordinator records
// it in the audit log and the admin sees it in the site list.
func TestWitnessAlarmReachesTheAdmins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const site = "st-marys"
	if err := f.AddSite(site, SiteOptions{Data: siteagent.MemoryData{Data: blobs(8, 1)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Wait until the site has cosigned a checkpoint.
	var witnessed uint64
	for witnessed == 0 {
		b, err := audit.ParseBundle(export(t, ctx, f, "", "bundle"))
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := audit.Verify(b, nil, audit.VerifyOptions{}); err == nil && len(rep.Cosigners) == 1 {
			witnessed = rep.Size
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the site never cosigned a checkpoint")
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.StopSite(site)
	addr := f.Addr()
	if err := f.StopCoordinator(); err != nil {
		t.Fatal(err)
	}
	rewriteAuditLog(t, f, int(witnessed)+20) // beyond what the site may have cosigned since
	if err := f.StartCoordinator(addr, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := f.RestartSite(site, SiteOptions{Data: siteagent.MemoryData{Data: blobs(8, 1)}}); err != nil {
		t.Fatal(err)
	}
	var shown string
	for shown == "" {
		resp, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.Sites {
			if s.Name == site {
				shown = s.WitnessAlarm
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the admin never saw a witness alarm")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !strings.Contains(shown, "log history rewritten") {
		t.Errorf("the admin sees %q, want the site's reason (history rewritten)", shown)
	}
	// Later checkpoints are refused for the same reason, but raise no new
	// alarm: one alarm per problem, not one per checkpoint (each alarm
	// event grows the log, which brings another checkpoint).
	time.Sleep(time.Second) // a few checkpoint intervals (300ms)
	recorded := 0
	for _, e := range allEvents(t, ctx, f, "") {
		if e.Kind == "site.witness_alarm" && strings.Contains(e.Detail, site) {
			recorded++
		}
	}
	if recorded != 1 {
		t.Errorf("%d site.witness_alarm events in the audit log, want 1", recorded)
	}
	// The site keeps its own copy, whatever the coordinator does with it.
	f.StopSite(site)
	rec, err := siteagent.ReadPrivacy(filepath.Join(f.Dir, "sites", site), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Alarms) != 1 || !rec.Alarms[0].Sent || rec.Alarms[0].Witnessed < witnessed || rec.Alarms[0].Size <= rec.Alarms[0].Witnessed ||
		rec.Alarms[0].Kind != "rewritten" || len(rec.Alarms[0].Checkpoint) == 0 {
		t.Fatalf("the site's alarms: %+v", rec.Alarms)
	}
}

// rewriteAuditLog replaces the stopped coordinator's audit log with n
// records of another history, signed with the same key: what an operator
// who rewrites history alone could produce.
func rewriteAuditLog(t *testing.T, f *Federation, n int) {
	t.Helper()
	key, err := audit.ReadKeyFile(filepath.Join(f.Dir, "audit-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(f.StatePath(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("audit")) }); err != nil {
		t.Fatal(err)
	}
	bs, err := audit.NewBoltStore(db, "audit")
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(bs, "concord.sim/audit")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := l.Append(audit.Record{Time: time.Now().UTC(), Kind: "round.note", Actor: "coordinator", Detail: "another history"}, key); err != nil {
			t.Fatal(err)
		}
	}
}
