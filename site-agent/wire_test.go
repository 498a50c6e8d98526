package siteagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// peer is the coordinator's end of the task stream, served over gRPC with
// mutual TLS from a throwaway CA: it records what the agent sends and
// sends what a test asks. (This package may not import the coordinator;
// sim runs the agent against the real one.)
type peer struct {
	pb.UnimplementedAgentServer
	hello chan *pb.Hello
	in    chan *pb.AgentMessage
	out   chan *pb.CoordinatorMessage
	// model, when set, is the blob Download serves; upload, when set,
	// serves Upload. Set them with serve.
	mu     sync.Mutex
	model  []byte
	upload func(pb.Agent_UploadServer) error
	// hook, when set, serves Connect instead (it may call p.connect).
	hook func(pb.Agent_ConnectServer) error
}

func (p *peer) serve(model []byte, upload func(pb.Agent_UploadServer) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.model, p.upload = model, upload
}

func (p *peer) Connect(stream pb.Agent_ConnectServer) error {
	p.mu.Lock()
	hook := p.hook
	p.mu.Unlock()
	if hook != nil {
		return hook(stream)
	}
	return p.connect(stream)
}

func (p *peer) connect(stream pb.Agent_ConnectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	p.hello <- first.GetHello()
	if err := stream.Send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Welcome{Welcome: &pb.Welcome{Site: "st-marys", HeartbeatSeconds: 60}}}); err != nil {
		return err
	}
	go func() {
		for m := range p.out {
			if stream.Send(m) != nil {
				return
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		p.in <- m
	}
}

// Download serves every blob as p.model, by default a model of 1000 zero
// weights.
func (p *peer) Download(_ *pb.DownloadRequest, stream pb.Agent_DownloadServer) error {
	p.mu.Lock()
	model := p.model
	p.mu.Unlock()
	if model != nil {
		return stream.Send(&pb.Chunk{Data: model})
	}
	return stream.Send(&pb.Chunk{Data: make([]byte, 4000)})
}

func (p *peer) Upload(stream pb.Agent_UploadServer) error {
	p.mu.Lock()
	upload := p.upload
	p.mu.Unlock()
	if upload == nil {
		return p.UnimplementedAgentServer.Upload(stream)
	}
	return upload(stream)
}

// startPeer serves a peer and returns it with an agent configuration
// (site certificate, state folder) that reaches it.
func startPeer(t *testing.T) (*peer, Config) {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if err := pki.InitCA(ca, ""); err != nil {
		t.Fatal(err)
	}
	ck, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleCoordinator, Name: "coordinator", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	sk, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	stc, err := pki.ServerTLS(ck.CAPEM, ck.CertPEM, ck.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctc, err := pki.ClientTLS(sk.CAPEM, sk.CertPEM, sk.KeyPEM, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{hello: make(chan *pb.Hello, 4), in: make(chan *pb.AgentMessage, 64), out: make(chan *pb.CoordinatorMessage, 16)}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(stc)))
	pb.RegisterAgentServer(srv, p)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return p, Config{Coordinator: lis.Addr().String(), TLS: ctc, StateDir: filepath.Join(dir, "state"),
		Logger: slog.New(slog.DiscardHandler), KeyPassphrase: []byte("test")}
}

// runStarted runs a until stop is called or the test ends, and returns
// stop, which waits for Run to return and reports its error.
func runStarted(t *testing.T, a *Agent) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(stop)
	return stop
}

// startAgent makes an agent of cfg and runs it like runStarted.
func startAgent(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return runStarted(t, a)
}

// runAgent runs an agent of cfg until the test ends.
func runAgent(t *testing.T, cfg Config) { startAgent(t, cfg) }

// next returns the agent's next message of the wanted kind, skipping
// heartbeats, or fails after a while.
func next[T any](t *testing.T, p *peer, get func(*pb.AgentMessage) T, isSet func(T) bool) T {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-p.in:
			if v := get(m); isSet(v) {
				return v
			}
			if m.GetHeartbeat() == nil {
				t.Fatalf("unexpected message %v", m)
			}
		case <-deadline:
			var zero T
			t.Fatal("no message from the agent")
			return zero
		}
	}
}

func nextHealth(t *testing.T, p *peer) *pb.Health {
	t.Helper()
	return next(t, p, (*pb.AgentMessage).GetHealth, func(h *pb.Health) bool { return h != nil })
}

// TestHealthFollowsTheDataFolder: Hello carries the start-up check, and
// Health is sent each time the answer changes, and only then.
func TestHealthFollowsTheDataFolder(t *testing.T) {
	p, cfg := startPeer(t)
	data := filepath.Join(t.TempDir(), "xrays")
	writeTree(t, data, "normal/"+patient+"/1.dcm")
	cfg.Data = &DICOMFolder{Dir: data, Classes: []string{"normal", "lesion"}}
	cfg.CheckInterval = 20 * time.Millisecond
	runAgent(t, cfg)

	hello := <-p.hello
	if hello.Examples != 0 || !strings.Contains(hello.DataProblem, `class folder "lesion" is missing`) || hello.Version != Version {
		t.Fatalf("hello %+v", hello)
	}
	// Built aside and moved in at once, so that no check sees it half made.
	staging := t.TempDir()
	writeTree(t, staging, "lesion/p7/1.dcm", "lesion/p7/2.dcm")
	if err := os.Rename(filepath.Join(staging, "lesion"), filepath.Join(data, "lesion")); err != nil {
		t.Fatal(err)
	}
	if h := nextHealth(t, p); h.Examples != 3 || h.DataProblem != "" {
		t.Fatalf("after the folder was created: %+v", h)
	}
	time.Sleep(200 * time.Millisecond) // ten checks with the same answer
	// Moved away at once, so that no check sees it half removed.
	if err := os.Rename(data, filepath.Join(staging, "gone")); err != nil {
		t.Fatal(err)
	}
	if h := nextHealth(t, p); h.Examples != 0 || !strings.Contains(h.DataProblem, "data folder 'xrays' does not exist") {
		t.Fatalf("after the folder was removed: %+v", h)
	}
}

// TestOddTasksFailWithoutHarm: tasks the agent cannot run are reported as
// failed, with a bounded reason, and the agent goes on serving.
func TestOddTasksFailWithoutHarm(t *testing.T) {
	p, cfg := startPeer(t)
	cfg.Data = MemoryData{}
	runAgent(t, cfg)
	<-p.hello
	huge := trainTask("job-1", 1)
	huge.InputParams = 1 << 40
	noSpec := trainTask("job-1", 2)
	noSpec.Spec = nil
	unknown := trainTask("job-1", 3)
	unknown.Kind = 42
	longName := trainTask("job-1", 4)
	longName.JobId = strings.Repeat("j", 2<<20)
	noData := trainTask("job-2", 1) // a valid task, but the site has no data
	for _, task := range []*pb.Task{huge, noSpec, unknown, longName, noData} {
		p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
	}
	want := map[string]string{huge.TaskId: "parameters", noSpec.TaskId: "no job spec", unknown.TaskId: "unknown task kind 42",
		longName.TaskId: "job id of 2097152 bytes", noData.TaskId: "the site's dataset is empty"}
	for n := len(want); n > 0; n-- {
		s := next(t, p, (*pb.AgentMessage).GetStatus, func(s *pb.TaskStatus) bool { return s != nil })
		if s.State != "failed" || !strings.Contains(s.Detail, want[s.TaskId]) || len(s.Detail) > maxDetail {
			t.Errorf("status %+v; want failed with %q", s, want[s.TaskId])
		}
		delete(want, s.TaskId)
	}
	if len(want) > 0 {
		t.Fatalf("no report for %v", want)
	}
}

// failingTrainer fails every call with err and counts the calls.
type failingTrainer struct {
	err   error
	calls chan struct{}
}

func (f failingTrainer) Train(context.Context, TrainRequest) (TrainResult, error) {
	f.calls <- struct{}{}
	return TrainResult{}, f.err
}

// TestRetryPolicy: a transient training failure is tried three times, a
// permanent one (the job's model cannot be built) once; both are reported.
func TestRetryPolicy(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		tries int
	}{
		{"transient", errors.New("the GPU node went away"), 3},
		{"bad model spec", fmt.Errorf("%w: base_width 0", learning.ErrBadSpec), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, cfg := startPeer(t)
			cfg.Data = MemoryData{Data: learning.Dataset{N: 2, C: 1, H: 2, W: 2, X: make([]float32, 8), Y: []int{0, 1}}}
			tr := failingTrainer{err: c.err, calls: make(chan struct{}, 8)}
			cfg.Trainer = tr
			runAgent(t, cfg)
			<-p.hello
			task := trainTask("job-1", 1)
			task.Spec.Model = &pb.ModelSpec{Channels: 1, Height: 2, Width: 2, Classes: 2}
			p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
			s := next(t, p, (*pb.AgentMessage).GetStatus, func(s *pb.TaskStatus) bool { return s != nil })
			if s.TaskId != task.TaskId || s.State != "failed" || !strings.Contains(s.Detail, c.err.Error()) {
				t.Fatalf("status %+v", s)
			}
			if len(tr.calls) != c.tries {
				t.Fatalf("trained %d times, want %d", len(tr.calls), c.tries)
			}
		})
	}
}
