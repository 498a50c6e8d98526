package sim

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/coordinator"
	"github.com/concord-fl/concord/internal/backup"
	"github.com/concord-fl/concord/internal/promtext"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// httpGet returns the status and body of a GET on a management listener.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// modelSHA256 downloads a model version and hashes its weights.
func modelSHA256(t *testing.T, ctx context.Context, admin pb.AdminClient, version string) [32]byte {
	t.Helper()
	stream, err := admin.GetModel(ctx, &pb.GetModelRequest{Version: version})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("download %s: %v", version, err)
		}
		h.Write(m.Chunk.GetData())
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// takeBackup calls Admin.Backup and writes the stream to path, checking the
// SHA-256 the coordinator announced.
func takeBackup(t *testing.T, ctx context.Context, admin pb.AdminClient, path string) string {
	t.Helper()
	stream, err := admin.Backup(ctx, &pb.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	var size int64
	var announced string
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		if ch.Size > 0 {
			size = ch.Size
		}
		if ch.Sha256 != "" {
			announced = ch.Sha256
		}
		f.Write(ch.Data)
		h.Write(ch.Data)
	}
	got, _ := backup.FileSHA256(path)
	if announced == "" || got != announced || size <= 0 {
		t.Fatalf("backup: announced sha256 %q size %d, file sha256 %s", announced, size, got)
	}
	return got
}

// TestCoordinatorHealthBackupRestore: the coordinator's management listener
// answers /healthz and /readyz; an online backup taken while a site is
// connected restores into a fresh state folder, on which a new coordinator
// has the job, the same model bytes and an audit log that verifies and
// records the backup.
func TestCoordinatorHealthBackupRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := "http://" + f.Coordinator().MetricsAddr().String()
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if err := f.AddSite("st-marys", SiteOptions{Data: siteagent.MemoryData{Data: blobs(32, 1)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/readyz 200", func() bool { code, _ := httpGet(t, base+"/readyz"); return code == 200 })
	final := runJob(t, ctx, f, testSpec(t, "name: ops\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n"))
	if final.State != "completed" || final.ModelVersion == "" {
		t.Fatalf("job ended %s (%s)", final.State, final.Reason)
	}
	want := modelSHA256(t, ctx, f.Admin, final.ModelVersion)

	file := filepath.Join(t.TempDir(), "coordinator.backup")
	sum := takeBackup(t, ctx, f.Admin, file) // the site is connected: the daemon runs on
	evs, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if last := evs.Events[len(evs.Events)-1]; last.Kind != coordinator.EvBackup || !strings.Contains(last.Detail, sum) {
		t.Errorf("the backup is not in the audit log: last event %s %q", last.Kind, last.Detail)
	}
	f.StopSite("st-marys")
	if err := f.StopCoordinator(); err != nil {
		t.Fatal(err)
	}

	// A fresh host: the state folder holds only the audit key, kept apart.
	fresh := t.TempDir()
	key, err := os.ReadFile(filepath.Join(filepath.Dir(f.StatePath()), "audit-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fresh, "audit-key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	o := coordinator.RestoreOptions{Backup: file, StatePath: filepath.Join(fresh, "coordinator.db"), AuditOrigin: auditOrigin}
	if _, err := coordinator.Restore(coordinator.RestoreOptions{Backup: file, StatePath: o.StatePath, AuditOrigin: "another/origin"}); err == nil {
		t.Fatal("a backup restored under another audit origin")
	}
	res, err := coordinator.Restore(o)
	if err != nil || res.AuditRecords == 0 || res.Jobs != 1 || res.Kept != "" {
		t.Fatalf("restore: %+v, %v", res, err)
	}
	f.statePath = o.StatePath
	if err := f.StartCoordinator("127.0.0.1:0", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	f.adminConn.Close()
	kit, err := f.Kit("admin", "ops-admin")
	if err != nil {
		t.Fatal(err)
	}
	if f.adminConn, err = f.Dial(kit); err != nil {
		t.Fatal(err)
	}
	f.Admin = pb.NewAdminClient(f.adminConn)
	j, err := f.Admin.GetJob(ctx, &pb.GetJobRequest{JobId: final.Id})
	if err != nil || j.State != "completed" || j.ModelVersion != final.ModelVersion {
		t.Fatalf("restored job: %v, %v", j, err)
	}
	if got := modelSHA256(t, ctx, f.Admin, final.ModelVersion); got != want {
		t.Errorf("restored model %s differs: sha256 %x, was %x", final.ModelVersion, got, want)
	}
	if n, err := f.Coordinator().VerifyAudit(); err != nil || uint64(n) < res.AuditRecords {
		t.Errorf("restored audit log: %d records, %v", n, err)
	}
	// Restoring over a running coordinator is refused.
	if _, err := coordinator.Restore(o); !errors.Is(err, backup.ErrInUse) {
		t.Errorf("restore over a running coordinator: %v", err)
	}
}

// TestAgentMetricsBackupRestore: a site's metrics move when it trains a DP
// round; a backup taken from the running agent (POST /backup) restores
// into a fresh state folder with the same privacy ledger and sent log.
func TestAgentMetricsBackupRestore(t *testing.T) {
	f, ctx := startFederation(t)
	o := SiteOptions{Data: siteagent.MemoryData{Data: blobs(64, 1)}, MetricsListen: "127.0.0.1:0",
		Privacy: siteagent.PrivacyPolicy{Budget: &dp.Budget{Level: dp.Record, Epsilon: 8, Delta: 1e-5}}}
	if err := f.AddSite("st-marys", o); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	base := "http://" + f.Agent("st-marys").MetricsAddr().String()
	metrics := func() []promtext.Sample {
		t.Helper()
		code, body := httpGet(t, base+"/metrics")
		s, err := promtext.Parse(strings.NewReader(body))
		if code != 200 || err != nil {
			t.Fatalf("/metrics: %d %v\n%s", code, err, body)
		}
		return s
	}
	if v, _ := promtext.Value(metrics(), "concord_agent_tasks_total", "kind", "train", "outcome", "done"); v != 0 {
		t.Fatalf("train tasks done before any job: %v", v)
	}
	j := runJob(t, ctx, f, testSpec(t, "name: dp\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\nmodel: {base_width: 4}\n"+
		"training: {batch_size: 16, optimizer: sgd, learning_rate: 0.05}\n"+
		"privacy: {secure_aggregation: none, level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 2}\nseed: 3\n"))
	if j.State != "completed" {
		t.Fatalf("job: %s %s", j.State, j.Reason)
	}
	s := metrics()
	for _, c := range []struct {
		name   string
		labels []string
		ok     func(float64) bool
	}{
		{"concord_agent_tasks_total", []string{"kind", "train", "outcome", "done"}, func(v float64) bool { return v >= 1 }},
		{"concord_agent_rounds_trained_total", nil, func(v float64) bool { return v >= 1 }},
		{"concord_agent_uploaded_bytes_total", nil, func(v float64) bool { return v > 0 }},
		{"concord_agent_epsilon_spent", []string{"level", "record"}, func(v float64) bool { return v > 0 && v < 8 }},
		{"concord_agent_epsilon_budget", []string{"level", "record"}, func(v float64) bool { return v == 8 }},
		{"concord_agent_connected", nil, func(v float64) bool { return v == 1 }},
		{"concord_agent_ready", nil, func(v float64) bool { return v == 1 }},
		{"concord_agent_data_examples", nil, func(v float64) bool { return v == 64 }},
	} {
		if v, found := promtext.Value(s, c.name, c.labels...); !found || !c.ok(v) {
			t.Errorf("%s%v = %v (found %v)", c.name, c.labels, v, found)
		}
	}

	resp, err := http.Post(base+"/backup", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "agent.backup")
	_, sum, err := backup.WriteFile(file, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || sum != resp.Header.Get(siteagent.BackupSHA256Header) {
		t.Fatalf("POST /backup: %d, sha256 %s (header %s), %v", resp.StatusCode, sum, resp.Header.Get(siteagent.BackupSHA256Header), err)
	}
	f.StopSite("st-marys")
	state := filepath.Join(f.Dir, "sites", "st-marys")
	wantPrivacy, err := siteagent.ReadPrivacy(state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wantSent, err := siteagent.ReadSent(state, time.Second)
	if err != nil || len(wantSent) == 0 {
		t.Fatalf("sent log: %v, %v", wantSent, err)
	}
	fresh := t.TempDir()
	if _, err := siteagent.RestoreState(file, fresh); err != nil {
		t.Fatal(err)
	}
	gotPrivacy, err := siteagent.ReadPrivacy(fresh, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	gotSent, err := siteagent.ReadSent(fresh, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(wantPrivacy)
	got, _ := json.Marshal(gotPrivacy)
	if wantPrivacy.Ledger == nil || len(wantPrivacy.Ledger.Entries()) == 0 || string(got) != string(want) {
		t.Errorf("restored privacy record differs:\n got %s\nwant %s", got, want)
	}
	if !reflect.DeepEqual(gotSent, wantSent) {
		t.Errorf("restored sent log differs:\n got %+v\nwant %+v", gotSent, wantSent)
	}
}
