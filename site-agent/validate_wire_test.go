package siteagent

import (
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// flakyPeer hangs up right after sending its first session's task and
// then refuses connections until it is opened again: the agent runs the
// task with no stream to answer on.
type flakyPeer struct {
	peer     *peer
	task     *pb.Task
	open     atomic.Bool
	sessions atomic.Int32
}

func (f *flakyPeer) Connect(stream pb.Agent_ConnectServer) error {
	if !f.open.Load() {
		return status.Error(codes.Unavailable, "coordinator restarting")
	}
	if f.sessions.Add(1) > 1 {
		return f.peer.connect(stream)
	}
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Welcome{Welcome: &pb.Welcome{Site: "st-marys", HeartbeatSeconds: 60}}}); err != nil {
		return err
	}
	f.open.Store(false)
	return stream.Send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: f.task}})
}

// TestReportSurvivesReconnect: a report made while the link is down is
// kept and sent on the next stream, without the task being sent again.
func TestReportSurvivesReconnect(t *testing.T) {
	p, cfg := startPeer(t)
	spec := validationSpec()
	m, model := validationModel(t, spec)
	p.serve(model, nil)
	n := 20
	data := learning.Dataset{N: n, C: 1, H: 28, W: 28, X: make([]float32, n*28*28), Y: make([]int, n)}
	for i := range n {
		data.Y[i] = i % 2
		data.X[i*784+400] = float32(i)
	}
	cfg.Data = MemoryData{Data: data}
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	f := &flakyPeer{peer: p, task: validateTask(spec, m, model)}
	f.open.Store(true)
	p.mu.Lock()
	p.hook = f.Connect
	p.mu.Unlock()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runStarted(t, a)

	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		queued := len(a.outbox)
		a.mu.Unlock()
		if queued == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no report queued while the coordinator was away")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.open.Store(true)
	<-p.hello // the second session's
	rep := next(t, p, (*pb.AgentMessage).GetValidation, func(r *pb.ValidationReport) bool { return r != nil })
	if rep.TaskId != f.task.TaskId || len(rep.Receipt) == 0 {
		t.Fatalf("report %+v", rep)
	}
	if s := f.sessions.Load(); s != 2 {
		t.Fatalf("%d sessions", s)
	}
}
