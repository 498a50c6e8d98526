package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// These tests attack a running coordinator with valid site and admin
// certificates, the way a hostile or broken peer would, and check that it
// keeps serving everybody else.

// upload is a multi-chunk upload driven by hand: the test decides when to
// send each chunk.
type upload struct {
	stream pb.Agent_UploadClient
	chunks [][]byte
}

func (s *rawSite) begin(ctx context.Context, h *pb.UploadHeader, data []byte, chunk int) (*upload, error) {
	stream, err := s.agent.Upload(ctx)
	if err != nil {
		return nil, err
	}
	u := &upload{stream: stream}
	for off := 0; off < len(data); off += chunk {
		u.chunks = append(u.chunks, data[off:min(off+chunk, len(data))])
	}
	sum := sha256.Sum256(data)
	h.TotalChunks, h.TotalBytes, h.Sha256 = uint32(len(u.chunks)), uint64(len(data)), sum[:]
	if err := stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Header{Header: h}}); err != nil {
		return nil, err
	}
	if _, err := stream.Recv(); err != nil {
		return nil, err
	}
	return u, nil
}

// finish sends chunks from `from` on and waits for completion.
func (u *upload) finish(from int) error {
	for i := from; i < len(u.chunks); i++ {
		if err := u.stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Chunk{Chunk: &pb.Chunk{Index: uint32(i), Data: u.chunks[i]}}}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		ack, err := u.stream.Recv()
		if err != nil {
			return err
		}
		if ack.Complete {
			return nil
		}
	}
	return errors.New("upload ended without completion")
}

func updateHeader(job string, task *pb.Task) *pb.UploadHeader {
	return &pb.UploadHeader{JobId: job, Round: task.Round, Nonce: task.Nonce, Kind: pb.UploadKind_UPLOAD_KIND_UPDATE,
		SampleCount: 10, LayoutHash: task.LayoutHash}
}

func values(vs []float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func startFederation(t *testing.T) (*Federation, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	f, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ctx
}

func submit(t *testing.T, ctx context.Context, f *Federation, yaml string) *pb.Job {
	t.Helper()
	job, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec(t, yaml)})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJob(t *testing.T, ctx context.Context, f *Federation, id string) *pb.Job {
	t.Helper()
	j, err := f.Admin.GetJob(ctx, &pb.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func allEvents(t *testing.T, ctx context.Context, f *Federation, job string) []*pb.JobEvent {
	t.Helper()
	var out []*pb.JobEvent
	token := ""
	for {
		resp, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{JobId: job, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Events...)
		if token = resp.NextPageToken; token == "" {
			return out
		}
	}
}

// TestSilentDownloadDoesNotFreezeCoordinator: a site opens a Download of a
// large model and never reads it. Other sites' uploads, admin calls and new
// jobs (which grow the database) must go on as if it were not there.
func TestSilentDownloadDoesNotFreezeCoordinator(t *testing.T) {
	f, ctx := startFederation(t)
	a := newRawSite(t, ctx, f, "site-a")
	b := newRawSite(t, ctx, f, "site-b")
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	spec := "name: big\nrounds: 1\nmin_sites: 2\nround_deadline: 60s\nmodel: {arch: cnn, channels: 1, height: 64, width: 64, classes: 2, base_width: 96}\nprivacy: {secure_aggregation: none}\nseed: 1\n"
	job := submit(t, ctx, f, spec)
	ta, tb := a.task(t), b.task(t)
	if ta.InputParams < 1<<18 {
		t.Fatalf("the model has %d parameters: too small to fill the stream's window", ta.InputParams)
	}

	// The silent reader: a connection with fixed small flow-control windows
	// (no window growth), which reads nothing.
	kit, err := f.Kit(pki.RoleSite, "site-a")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ClientTLS(kit.CAPEM, kit.CertPEM, kit.KeyPEM, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(f.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 3; i++ {
		if _, err := pb.NewAgentClient(conn).Download(ctx, &pb.DownloadRequest{Blob: ta.InputBlob}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the coordinator is now blocked sending to it

	step := func(what string, fn func(ctx context.Context) error) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := fn(sctx); err != nil {
			t.Fatalf("%s while a download is not being read: %v", what, err)
		}
	}
	params := int(tb.InputParams)
	step("site-b's upload", func(ctx context.Context) error {
		u, err := b.begin(ctx, updateHeader(job.Id, tb), make([]byte, 4*params), 1<<20)
		if err != nil {
			return err
		}
		return u.finish(0)
	})
	step("another job's submission", func(ctx context.Context) error {
		_, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec(t, strings.Replace(spec, "name: big", "name: big2", 1))})
		return err
	})
	step("listing events", func(ctx context.Context) error {
		_, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{})
		return err
	})
	step("site-a's upload", func(ctx context.Context) error {
		u, err := a.begin(ctx, updateHeader(job.Id, ta), make([]byte, 4*params), 1<<20)
		if err != nil {
			return err
		}
		return u.finish(0)
	})
	eventually(t, 20*time.Second, "round 1 aggregated", func() bool { return len(getJob(t, ctx, f, job.Id).Rounds) == 1 })
}

// TestRevocationBitesOnOpenConnections: after `pki revoke`, the revoked
// site's task stream closes, its upload in flight stops, its delivery in the
// open round is discarded, and the round closes without it.
func TestRevocationBitesOnOpenConnections(t *testing.T) {
	f, ctx := startFederation(t)
	sites := map[string]*rawSite{}
	names := []string{"site-a", "site-b", "site-c", "site-d"}
	streams := map[string]pb.Agent_ConnectClient{}
	for _, n := range names {
		sites[n] = newRawSite(t, ctx, f, n)
		streams[n] = sites[n].stream
	}
	if err := f.WaitSites(ctx, len(names)); err != nil {
		t.Fatal(err)
	}
	job := submit(t, ctx, f, "name: revoke\nrounds: 2\nmin_sites: 2\nround_deadline: 60s\nstraggler_cutoff: 50s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	tasks := map[string]*pb.Task{}
	for _, n := range names {
		tasks[n] = sites[n].task(t)
	}
	params := int(tasks["site-a"].InputParams)
	// site-a delivers before it is revoked; site-d is mid-upload.
	if err := sites["site-a"].send(ctx, updateHeader(job.Id, tasks["site-a"]), make([]byte, 4*params)); err != nil {
		t.Fatal(err)
	}
	inflight, err := sites["site-d"].begin(ctx, updateHeader(job.Id, tasks["site-d"]), make([]byte, 4*params), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := inflight.stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Chunk{Chunk: &pb.Chunk{Index: 0, Data: inflight.chunks[0]}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := inflight.stream.Recv(); err != nil {
		t.Fatal(err)
	}

	revoked := time.Now()
	for _, n := range []string{"site-a", "site-d"} {
		if err := pki.Revoke(f.CADir, pki.RoleSite, n); err != nil {
			t.Fatal(err)
		}
	}
	// The upload in flight is stopped...
	if err := inflight.finish(1); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("site-d's upload after revocation: %v, want PermissionDenied", err)
	}
	// ...and both task streams are closed with the reason.
	for _, n := range []string{"site-a", "site-d"} {
		select {
		case err := <-sites[n].closed:
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
				t.Errorf("%s's task stream ended with %v", n, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s's task stream is still open 10 s after revocation", n)
		}
	}
	t.Logf("streams closed %v after revocation", time.Since(revoked).Round(time.Millisecond))
	for _, n := range []string{"site-b", "site-c"} {
		if err := sites[n].send(ctx, updateHeader(job.Id, tasks[n]), make([]byte, 4*params)); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	eventually(t, 10*time.Second, "round 1 aggregated", func() bool { return len(getJob(t, ctx, f, job.Id).Rounds) >= 1 })
	r1 := getJob(t, ctx, f, job.Id).Rounds[0]
	if !slices.Equal(r1.Contributors, []string{"site-b", "site-c"}) {
		t.Fatalf("round 1 contributors %v: a revoked site's update was aggregated", r1.Contributors)
	}
	// Round 2 goes to the remaining sites only.
	for _, n := range []string{"site-b", "site-c"} {
		if task := sites[n].task(t); task.Round != 2 {
			t.Fatalf("%s got a task for round %d", n, task.Round)
		}
	}
	var sawRevoked bool
	for _, e := range allEvents(t, ctx, f, "") {
		if e.Kind == "site.revoked" && e.Site == "site-a" && strings.Contains(e.Detail, "removed from open jobs "+job.Id) {
			sawRevoked = true
		}
	}
	if !sawRevoked {
		t.Error("no site.revoked event names site-a and the job it was removed from")
	}
	resp, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.Sites {
		if s.Revoked != (s.Name == "site-a" || s.Name == "site-d") {
			t.Errorf("sites list: %s revoked=%v", s.Name, s.Revoked)
		}
	}
}

// TestHostileStringsAndListings: oversized strings from a site are cut
// before they reach the event log and listings, and every list pages.
func TestHostileStringsAndListings(t *testing.T) {
	f, ctx := startFederation(t)
	kit, err := f.Kit(pki.RoleSite, "site-big")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := f.Dial(kit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := pb.NewAgentClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("x", 512<<10)
	if err := stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Hello{Hello: &pb.Hello{Version: huge, DataProblem: huge}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	normal := newRawSite(t, ctx, f, "site-ok")
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	job := submit(t, ctx, f, "name: strings\nrounds: 1\nmin_sites: 2\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	normal.task(t)
	var task *pb.Task
	for task == nil {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		task = m.GetTask()
	}
	for i := 0; i < 9; i++ {
		if err := stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Status{Status: &pb.TaskStatus{TaskId: task.TaskId, State: "failed", Detail: huge}}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "job aborted by the failure", func() bool { return getJob(t, ctx, f, job.Id).State == "aborted" })

	sites, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil {
		t.Fatalf("sites list after a 512 KiB agent version: %v", err)
	}
	for _, s := range sites.Sites {
		if len(s.Version) > 128 || len(s.DataProblem) > 2048 || len(s.GetLastFailure().GetReason()) > 2048 {
			t.Errorf("site %s: version %d bytes, data problem %d bytes, failure %d bytes", s.Name, len(s.Version), len(s.DataProblem), len(s.GetLastFailure().GetReason()))
		}
	}
	evs := allEvents(t, ctx, f, "")
	for _, e := range evs {
		if len(e.Detail) > 4096 {
			t.Errorf("event %d (%s) has a %d-byte detail", e.Seq, e.Kind, len(e.Detail))
		}
	}
	// Paging: small pages walk every event once, in order.
	var paged []int64
	token := ""
	for {
		resp, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Events) > 3 {
			t.Fatalf("page of %d events for page_size 3", len(resp.Events))
		}
		for _, e := range resp.Events {
			paged = append(paged, e.Seq)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if len(paged) < len(evs) || !slices.IsSorted(paged) || len(slices.Compact(slices.Clone(paged))) != len(paged) {
		t.Errorf("paged listing gave %d events (%d in all), sorted %v", len(paged), len(evs), slices.IsSorted(paged))
	}
	page, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{PageSize: 1})
	if err != nil || len(page.Sites) != 1 || page.NextPageToken == "" {
		t.Fatalf("sites page of 1: %v, %d sites, token %q", err, len(page.GetSites()), page.GetNextPageToken())
	}
	rest, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{PageSize: 1, PageToken: page.NextPageToken})
	if err != nil || len(rest.Sites) != 1 || rest.Sites[0].Name == page.Sites[0].Name {
		t.Fatalf("second sites page: %v %v", err, rest.GetSites())
	}
	// Errors do not echo a peer's huge strings back.
	_, err = f.Admin.GetJob(ctx, &pb.GetJobRequest{JobId: huge})
	if status.Code(err) != codes.NotFound || len(err.Error()) > 512 {
		t.Errorf("GetJob with a 512 KiB id: %d-byte error %v", len(err.Error()), status.Code(err))
	}
}

// TestPoisonedPlaintextUpdates: without secure aggregation the coordinator
// sees each update and refuses one above the job's clip norm, or absurd in a
// job without one.
func TestPoisonedPlaintextUpdates(t *testing.T) {
	for _, tc := range []struct {
		name, clip string
		update     func(params int) []float32
		want       string
	}{
		{"one huge weight, no clip_norm", "", func(p int) []float32 { v := make([]float32, p); v[5] = 3e38; return v }, "L2 norm exceeds"},
		{"one huge weight, clip_norm 1", "clip_norm: 1, ", func(p int) []float32 { v := make([]float32, p); v[5] = 3e38; return v }, "training.clip_norm"},
		{"norm 2 over clip_norm 1", "clip_norm: 1, ", func(p int) []float32 { v := make([]float32, p); v[0], v[p-1] = 1.5, 1.3; return v }, "training.clip_norm"},
		{"clipped update", "clip_norm: 1, ", func(p int) []float32 { v := make([]float32, p); v[0], v[p-1] = 0.6, 0.8; return v }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ctx := startFederation(t)
			s := newRawSite(t, ctx, f, "site-a")
			if err := f.WaitSites(ctx, 1); err != nil {
				t.Fatal(err)
			}
			job := submit(t, ctx, f, fmt.Sprintf("name: poison\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\ntraining: {%slocal_epochs: 1}\nprivacy: {secure_aggregation: none}\nseed: 1\n", tc.clip))
			task := s.task(t)
			err := s.send(ctx, updateHeader(job.Id, task), values(tc.update(int(task.InputParams))))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("a clipped update was refused: %v", err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
}

// TestOnlyMembersDownloadAJobsModels: a site outside a job cannot read its
// models; a member can.
func TestOnlyMembersDownloadAJobsModels(t *testing.T) {
	f, ctx := startFederation(t)
	a := newRawSite(t, ctx, f, "site-a")
	outsider := newRawSite(t, ctx, f, "site-x")
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, f, "name: members\nrounds: 1\nmin_sites: 1\nsites: [site-a]\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	task := a.task(t)
	read := func(s *rawSite) error {
		stream, err := s.agent.Download(ctx, &pb.DownloadRequest{Blob: task.InputBlob})
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	if err := read(a); err != nil {
		t.Fatalf("a member could not download its job's model: %v", err)
	}
	if err := read(outsider); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a site outside the job downloaded its model: %v", err)
	}
}

// TestFailuresReachTheAdmin: a site's failed task is recorded with the job,
// shows in status and sites list, and a round it makes impossible ends at
// once, naming the site and its reason.
func TestFailuresReachTheAdmin(t *testing.T) {
	f, ctx := startFederation(t)
	a := newRawSite(t, ctx, f, "site-a")
	b := newRawSite(t, ctx, f, "site-b")
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	job := submit(t, ctx, f, "name: failing\nrounds: 1\nmin_sites: 2\nround_deadline: 600s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	ta := a.task(t)
	b.task(t)
	start := time.Now()
	if err := a.stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Status{Status: &pb.TaskStatus{TaskId: ta.TaskId, State: "failed", Detail: "data folder /data/xr is missing"}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "job aborted", func() bool { return getJob(t, ctx, f, job.Id).State == "aborted" })
	t.Logf("aborted %v after the failure (deadline 600 s)", time.Since(start).Round(time.Millisecond))
	j := getJob(t, ctx, f, job.Id)
	if !strings.Contains(j.Reason, "site-a failed: data folder /data/xr is missing") {
		t.Errorf("abort reason does not name the site and its reason: %q", j.Reason)
	}
	if len(j.Failures) != 1 || j.Failures[0].Site != "site-a" || j.Failures[0].Task != "update" {
		t.Errorf("job failures: %v", j.Failures)
	}
	var failed *pb.JobEvent
	for _, e := range allEvents(t, ctx, f, job.Id) {
		if e.Kind == "task.failed" {
			failed = e
		}
	}
	if failed == nil || failed.Site != "site-a" {
		t.Errorf("events --job %s has no task.failed for site-a", job.Id)
	}
	sites, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sites.Sites {
		if s.Name == "site-a" && s.GetLastFailure().GetJobId() != job.Id {
			t.Errorf("sites list: site-a's last failure %v", s.LastFailure)
		}
	}
}

// TestJobNamesOnlyKnownSites: a job naming a site the CA never issued is
// refused; a known but absent site is named in what the job waits for.
func TestJobNamesOnlyKnownSites(t *testing.T) {
	f, ctx := startFederation(t)
	newRawSite(t, ctx, f, "site-a")
	if _, err := f.Kit(pki.RoleSite, "site-b"); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec(t, "name: ghost\nrounds: 1\nmin_sites: 2\nsites: [site-a, ghost-site]\nprivacy: {secure_aggregation: none}\n")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ghost-site") {
		t.Fatalf("a job naming an unknown site: %v", err)
	}
	job := submit(t, ctx, f, "name: waiting\nrounds: 1\nmin_sites: 2\nsites: [site-a, site-b]\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\n")
	j := getJob(t, ctx, f, job.Id)
	if len(j.WaitingFor) != 1 || j.WaitingFor[0].Site != "site-b" || j.WaitingFor[0].Reason != "not connected" {
		t.Fatalf("waiting for %v, want site-b (not connected)", j.WaitingFor)
	}
}

// TestValidationSitesNeverTrain: a site listed under validation_sites gets
// no training task, even when the job lists no sites.
func TestValidationSitesNeverTrain(t *testing.T) {
	f, ctx := startFederation(t)
	a := newRawSite(t, ctx, f, "site-a")
	b := newRawSite(t, ctx, f, "site-b")
	v := newRawSite(t, ctx, f, "site-v")
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, f, "name: held-out\nrounds: 1\nmin_sites: 2\nvalidation_sites: [site-v]\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\n")
	a.task(t)
	b.task(t)
	select {
	case task := <-v.tasks:
		t.Fatalf("validation site got a %v task", task.Kind)
	case <-time.After(time.Second):
	}
}

// gatedTrainer returns the global model plus a constant, after gate opens.
type gatedTrainer struct {
	delta float32
	gate  chan struct{}
}

func (f gatedTrainer) Train(ctx context.Context, req siteagent.TrainRequest) (siteagent.TrainResult, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return siteagent.TrainResult{}, ctx.Err()
		}
	}
	w := make([]float32, len(req.Global))
	for i, g := range req.Global {
		w[i] = g + f.delta
	}
	return siteagent.TrainResult{Weights: w, Samples: 32}, nil
}

// TestRevokedKeyHolderLeavesTheEncryptedSum: with secure aggregation a site
// revoked after its encrypted update was added to the round's sum is taken
// out of it again: the decrypted mean is that of the other sites.
func TestRevokedKeyHolderLeavesTheEncryptedSum(t *testing.T) {
	f, ctx := startFederation(t)
	gate := make(chan struct{})
	for name, tr := range map[string]gatedTrainer{"site-a": {delta: 0.5}, "site-b": {delta: 0.1}, "site-c": {delta: 0.3, gate: gate}} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(32, 1)}, Trainer: tr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	job := submit(t, ctx, f, "name: secure-revoke\nrounds: 1\nmin_sites: 2\nround_deadline: 120s\nstraggler_cutoff: 100s\nprivacy: {secure_aggregation: mhe, threshold: 2}\nseed: 1\n")
	delivered := func(site string) bool {
		for _, e := range allEvents(t, ctx, f, job.Id) {
			if e.Kind == "upload.accepted" && e.Round == 1 && e.Site == site {
				return true
			}
		}
		return false
	}
	eventually(t, 60*time.Second, "site-a and site-b delivered", func() bool { return delivered("site-a") && delivered("site-b") })
	if err := pki.Revoke(f.CADir, pki.RoleSite, "site-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "site-a removed", func() bool {
		for _, e := range allEvents(t, ctx, f, "") {
			if e.Kind == "site.revoked" && e.Site == "site-a" {
				return true
			}
		}
		return false
	})
	close(gate)
	final := watchToEnd(t, ctx, f, job.Id)
	if final.State != "completed" {
		t.Fatalf("job %s: %s", final.State, final.Reason)
	}
	if c := final.Rounds[0].Contributors; !slices.Equal(c, []string{"site-b", "site-c"}) {
		t.Fatalf("contributors %v", c)
	}
	before, err := fetchModel(ctx, f.Admin, job.Id+"@0")
	if err != nil {
		t.Fatal(err)
	}
	after, err := fetchModel(ctx, f.Admin, job.Id+"@1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if d := after[i] - before[i]; math.Abs(float64(d)-0.2) > 1e-3 {
			t.Fatalf("parameter %d moved by %g: want 0.2, the mean of site-b and site-c (0.3 would include the revoked site)", i, d)
		}
	}
}

// TestSpecsThatWouldKillTheCoordinator: specs that once exhausted memory or
// slipped NaN into training are refused before anything is allocated, with
// the field and the limit, and the coordinator keeps serving.
func TestSpecsThatWouldKillTheCoordinator(t *testing.T) {
	f, ctx := startFederation(t)
	base := "name: hostile\nrounds: 1\nmin_sites: 1\nprivacy: {secure_aggregation: none}\n"
	for _, tc := range []struct {
		name string
		edit func(s *pb.JobSpec)
		want string
	}{
		{"4294967295 classes", func(s *pb.JobSpec) { s.Model.Classes = 4294967295 }, "model.classes"},
		{"base_width 1024 at 224x224x3", func(s *pb.JobSpec) {
			s.Model.BaseWidth, s.Model.Height, s.Model.Width, s.Model.Channels = 1024, 224, 224, 3
		}, "parameters"},
		{"NaN learning rate", func(s *pb.JobSpec) { s.Training.LearningRate = math.NaN() }, "training.learning_rate"},
		{"NaN clip norm", func(s *pb.JobSpec) { s.Training.ClipNorm = math.NaN() }, "training.clip_norm"},
		{"NaN momentum", func(s *pb.JobSpec) { s.Training.Momentum = math.NaN() }, "training.momentum"},
		{"Inf epsilon", func(s *pb.JobSpec) { s.Privacy.Epsilon = math.Inf(1) }, "privacy.epsilon"},
		{"epsilon without DP", func(s *pb.JobSpec) { s.Privacy.Epsilon = 1 }, "privacy.epsilon"},
		{"huge batch", func(s *pb.JobSpec) { s.Training.BatchSize = 1 << 30 }, "training.batch_size"},
		{"huge epochs", func(s *pb.JobSpec) { s.Training.LocalEpochs = 1 << 30 }, "training.local_epochs"},
		{"huge min_sites", func(s *pb.JobSpec) { s.MinSites = 1 << 30 }, "min_sites"},
		{"a megabyte name", func(s *pb.JobSpec) { s.Name = strings.Repeat("n", 1<<20) }, "name"},
	} {
		spec := testSpec(t, base)
		tc.edit(spec)
		_, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want InvalidArgument naming %s", tc.name, err, tc.want)
		} else if len(err.Error()) > 1024 {
			t.Errorf("%s: a %d-byte error", tc.name, len(err.Error()))
		}
	}
	if _, err := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{}); err != nil {
		t.Fatalf("the coordinator stopped serving: %v", err)
	}
}
