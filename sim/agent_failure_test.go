package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// runAgent runs a site agent with tc against addr until it returns or
// limit passes, and reports its error and how long it ran.
func runAgent(t *testing.T, addr string, tc *tls.Config, data siteagent.DataSource, limit time.Duration) (time.Duration, error) {
	t.Helper()
	a, err := siteagent.New(siteagent.Config{Coordinator: addr, TLS: tc, StateDir: t.TempDir(), Data: data,
		KeyPassphrase: []byte("test"), Logger: testLogger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	err = a.Run(ctx)
	return time.Since(start), err
}

// handTLS builds a client configuration without pki.ClientTLS, which
// refuses a kit that does not chain to its CA or has expired: here the
// coordinator is the one that must refuse it.
func handTLS(t *testing.T, trust []byte, k pki.Kit, serverName string) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair(k.CertPEM, k.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(trust)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13}
}

// TestAgentStopsOnPermanentTLSFailures: an agent that can never be
// accepted, or can never trust the coordinator, stops with ErrPermanent
// and a reason that says what to do, instead of retrying forever.
func TestAgentStopsOnPermanentTLSFailures(t *testing.T) {
	dir := t.TempDir()
	f, err := Start(Options{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	caPEM := mustRead(t, filepath.Join(f.CADir, pki.CACertFile))
	otherCA := filepath.Join(dir, "other-ca")
	if err := pki.InitCA(otherCA, "another consortium"); err != nil {
		t.Fatal(err)
	}
	foreign, err := pki.Issue(otherCA, pki.IssueRequest{Role: pki.RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := f.Kit(pki.RoleSite, "closed-site")
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Revoke(f.CADir, pki.RoleSite, "closed-site"); err != nil {
		t.Fatal(err)
	}
	good, err := f.Kit(pki.RoleSite, "riverside")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		tc   *tls.Config
		want string
	}{
		{"the whole kit from another consortium", handTLS(t, foreign.CAPEM, foreign, "127.0.0.1"), "coordinator's certificate is not signed by this site's consortium CA"},
		{"the site's certificate from another CA", handTLS(t, caPEM, foreign, "127.0.0.1"), "not signed by the consortium's CA"},
		{"an expired certificate", handTLS(t, caPEM, expiredKit(t, f.CADir), "127.0.0.1"), "refused this site's certificate as expired"},
		{"a revoked certificate", handTLS(t, caPEM, revoked, "127.0.0.1"), "revoked"},
		{"the coordinator dialled by a name its certificate lacks", handTLS(t, caPEM, good, "coordinator.example.org"), "set `coordinator:` in agent.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			took, err := runAgent(t, f.Addr(), c.tc, siteagent.MemoryData{Data: blobs(8, 1)}, 20*time.Second)
			if !errors.Is(err, siteagent.ErrPermanent) {
				t.Fatalf("Run returned %v after %s; want ErrPermanent", err, took.Round(time.Millisecond))
			}
			t.Logf("gave up after %s", took.Round(time.Millisecond))
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
		})
	}
}

// TestAgentWaitsForCoordinatorToComeUp: a coordinator that is down is a
// transient failure; the agent keeps trying and connects once it is up.
func TestAgentWaitsForCoordinatorToComeUp(t *testing.T) {
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := f.Addr()
	if err := f.StopCoordinator(); err != nil {
		t.Fatal(err)
	}
	kit, err := f.Kit(pki.RoleSite, "st-marys")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ClientTLS(kit.CAPEM, kit.CertPEM, kit.KeyPEM, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	a, err := siteagent.New(siteagent.Config{Coordinator: addr, TLS: tc, StateDir: t.TempDir(), Data: siteagent.MemoryData{Data: blobs(8, 1)},
		KeyPassphrase: []byte("test"), Logger: testLogger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("Run gave up while the coordinator was down: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	if err := f.StartCoordinator(addr, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := f.WaitSites(wctx, 1); err != nil {
		t.Fatal(err)
	}
}

// watchedTrainer trains for real with the learning package and records
// how many steps it made and how its training ended.
type watchedTrainer struct {
	mu      sync.Mutex
	started chan struct{}
	steps   int
	ended   chan error
}

func (w *watchedTrainer) Train(ctx context.Context, req siteagent.TrainRequest) (siteagent.TrainResult, error) {
	req.Progress = func(float64) {
		w.mu.Lock()
		if w.steps == 0 {
			close(w.started)
		}
		w.steps++
		w.mu.Unlock()
	}
	res, err := siteagent.LocalTrainer{}.Train(ctx, req)
	w.ended <- err
	return res, err
}

// TestAbortStopsLocalTraining aborts a job while its only site is deep in
// a long local training: the training stops within a couple of seconds
// with context.Canceled, no update arrives for the job, and the site goes
// on to train the next job.
func TestAbortStopsLocalTraining(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := &watchedTrainer{started: make(chan struct{}), ended: make(chan error, 4)}
	// 100 epochs of 2048 examples in batches of 4: minutes of training.
	if err := f.AddSite("st-marys", SiteOptions{Data: siteagent.MemoryData{Data: blobs(2048, 1)}, Trainer: tr}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: long\nrounds: 1\nmin_sites: 1\nround_deadline: 600s\nprivacy: {secure_aggregation: none}\nseed: 1\n"+
		"training: {local_epochs: 100, batch_size: 4}\n")
	job, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-tr.started:
	case <-ctx.Done():
		t.Fatal("training never started")
	}
	aborted := time.Now()
	if _, err := f.Admin.AbortJob(ctx, &pb.AbortJobRequest{JobId: job.Id, Reason: "wrong data set"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tr.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("training ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("local training still running 5s after the job was aborted")
	}
	t.Logf("training stopped %s after the abort", time.Since(aborted).Round(time.Millisecond))
	tr.mu.Lock()
	steps := tr.steps
	tr.mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // time for a retry (after 1s) to show
	tr.mu.Lock()
	if tr.steps != steps {
		t.Errorf("training went on after it stopped: %d steps, then %d", steps, tr.steps)
	}
	tr.mu.Unlock()
	select {
	case err := <-tr.ended:
		t.Fatalf("the cancelled task was retried (training ended again: %v)", err)
	default:
	}
	evs, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{JobId: job.Id})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Events {
		if e.Kind == "upload.accepted" {
			t.Fatal("an update arrived for the aborted job")
		}
	}
	// The agent is free for the next job.
	short := testSpec(t, "name: next\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 2\ntraining: {local_epochs: 1}\n")
	if final := runJob(t, ctx, f, short); final.State != "completed" {
		t.Fatalf("next job %s: %s", final.State, final.Reason)
	}
}

// countedFolder is a DICOMFolder that counts its checks.
type countedFolder struct {
	*siteagent.DICOMFolder
	checks atomic.Int32
}

func (c *countedFolder) Check() (int, string) {
	c.checks.Add(1)
	return c.DICOMFolder.Check()
}

// TestDataProblemFailsTaskAtOnce: a site whose class folder is missing
// fails its training task at once, without retries, and the reason the
// coordinator gets says what to fix and names no path or patient folder.
func TestDataProblemFailsTaskAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	f, err := Start(Options{Dir: filepath.Join(dir, "fed"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const patient = "SMITH^JOHN_1961"
	data := filepath.Join(dir, "hospital-xrays")
	if err := os.MkdirAll(filepath.Join(data, "normal", patient), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "normal", patient, "1.dcm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &countedFolder{DICOMFolder: &siteagent.DICOMFolder{Dir: data, Classes: []string{"normal", "lesion"}}}
	if err := f.AddSite("st-marys", SiteOptions{Data: src}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: data\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	if _, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec}); err != nil {
		t.Fatal(err)
	}
	var failed []*pb.JobEvent
	for len(failed) == 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		evs, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Events {
			if e.Kind == "task.failed" {
				failed = append(failed, e)
			}
		}
	}
	if len(failed) == 0 {
		t.Fatal("no task failure reached the coordinator")
	}
	got := failed[0].Detail
	for _, w := range []string{`class folder "lesion" is missing`, "'hospital-xrays'", "data.classes"} {
		if !strings.Contains(got, w) {
			t.Errorf("failure %q lacks %q", got, w)
		}
	}
	if strings.Contains(got, dir) || strings.Contains(got, patient) {
		t.Errorf("failure %q names a path or a patient", got)
	}
	// Retries would check again after 1s and 2s more.
	time.Sleep(3500 * time.Millisecond)
	if n := src.checks.Load(); n != 2 {
		t.Errorf("the data was checked %d times (start-up and the task make 2): the task was retried", n)
	}
	// The admin sees the problem and the failed task in sites list, and the
	// job ended at once (min_sites 1, its only site cannot deliver).
	sites, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil || len(sites.Sites) != 1 {
		t.Fatalf("sites list: %v, %d sites", err, len(sites.GetSites()))
	}
	s := sites.Sites[0]
	if !strings.Contains(s.DataProblem, `class folder "lesion" is missing`) || s.GetLastFailure().GetJobId() == "" {
		t.Errorf("sites list shows data problem %q, last failure %v", s.DataProblem, s.LastFailure)
	}
	if failed[0].JobId == "" {
		t.Error("the task.failed event carries no job id")
	}
	jobs, err := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil || len(jobs.Jobs) != 1 || jobs.Jobs[0].State != "aborted" || !strings.Contains(jobs.Jobs[0].Reason, "st-marys failed") {
		t.Errorf("the job did not end at once naming the site: %v", jobs.GetJobs())
	}
}
