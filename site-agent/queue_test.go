package siteagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// newTestAgent is an agent that has not dialled: its queue and checks run
// without a coordinator.
func newTestAgent(t *testing.T) *Agent {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if err := pki.InitCA(ca, ""); err != nil {
		t.Fatal(err)
	}
	kit, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ClientTLS(kit.CAPEM, kit.CertPEM, kit.KeyPEM, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Coordinator: "127.0.0.1:1", TLS: tc, StateDir: filepath.Join(dir, "state"), Data: MemoryData{},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.conn.Close(); a.st.close() })
	return a
}

func trainTask(job string, n int) *pb.Task {
	return &pb.Task{TaskId: fmt.Sprintf("%s/update/%d", job, n), Kind: pb.TaskKind_TASK_KIND_TRAIN, JobId: job, Round: uint32(n),
		Spec:      &pb.JobSpec{Model: &pb.ModelSpec{}, Training: &pb.TrainingSpec{}, Aggregation: &pb.AggregationSpec{}},
		InputBlob: "model/" + job + "/0", InputParams: 1000, Nonce: []byte("0123456789abcdef")}
}

func TestCheckTask(t *testing.T) {
	cases := []struct {
		name   string
		change func(*pb.Task)
		want   string // "" = accepted
	}{
		{"valid", func(*pb.Task) {}, ""},
		{"no task id", func(t *pb.Task) { t.TaskId = "" }, "task id"},
		{"huge task id", func(t *pb.Task) { t.TaskId = strings.Repeat("x", 1<<20) }, "task id of 1048576 bytes"},
		{"huge job id", func(t *pb.Task) { t.JobId = strings.Repeat("j", 300) }, "job id"},
		{"huge nonce", func(t *pb.Task) { t.Nonce = make([]byte, 1<<16) }, "nonce"},
		{"no spec", func(t *pb.Task) { t.Spec = nil }, "no job spec"},
		{"spec without training", func(t *pb.Task) { t.Spec.Training = nil }, "lacks its model, training"},
		{"zero parameters", func(t *pb.Task) { t.InputParams = 0 }, "model of 0 parameters"},
		{"absurd parameters", func(t *pb.Task) { t.InputParams = 1 << 40 }, "parameters"},
		{"no model blob", func(t *pb.Task) { t.InputBlob = "" }, "no global model"},
		{"too many key holders", func(t *pb.Task) {
			t.Points = map[string]uint32{}
			for i := range maxTaskPeers + 1 {
				t.Points[fmt.Sprint(i)] = uint32(i)
			}
		}, "key holders"},
		{"unknown kind", func(t *pb.Task) { t.Kind = 99 }, "unknown task kind 99"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task := trainTask("job-1", 1)
			c.change(task)
			err := checkTask(task)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("checkTask: %v, want %q", err, c.want)
			}
		})
	}
}

func TestRefusedTaskIsReportedNotQueued(t *testing.T) {
	a := newTestAgent(t)
	bad := trainTask("job-1", 1)
	bad.InputParams = 1 << 40
	a.enqueue(bad)
	a.enqueue(nil)
	if len(a.pending) != 0 {
		t.Fatalf("%d tasks queued", len(a.pending))
	}
	select {
	case s := <-a.status:
		if s.TaskId != bad.TaskId || s.State != "failed" || !strings.Contains(s.Detail, "the agent refused the task") {
			t.Fatalf("report %+v", s)
		}
	default:
		t.Fatal("the refused task was not reported to the coordinator")
	}
}

// TestCancelStopsOnlyThatJob: Cancel stops the job's running task and
// drops its queued ones, leaves other jobs alone, and a task of the job
// sent afterwards (the job resumed) is queued again.
func TestCancelStopsOnlyThatJob(t *testing.T) {
	a := newTestAgent(t)
	a.enqueue(trainTask("job-a", 1))
	a.enqueue(trainTask("job-b", 1))
	a.enqueue(trainTask("job-a", 2))
	a.enqueue(trainTask("job-a", 2)) // sent again: not queued twice
	if len(a.pending) != 3 {
		t.Fatalf("%d tasks queued, want 3", len(a.pending))
	}
	running, ctx := a.next(context.Background())
	if running.JobId != "job-a" {
		t.Fatalf("running %s", running.TaskId)
	}
	a.cancelJob("job-c", "not ours")
	if ctx.Err() != nil || len(a.pending) != 2 {
		t.Fatal("cancelling another job touched this one")
	}
	a.cancelJob("job-a", "aborted by admin")
	if !errors.Is(context.Cause(ctx), errJobCancelled) {
		t.Fatalf("running task's context: %v", context.Cause(ctx))
	}
	if len(a.pending) != 1 || a.pending[0].JobId != "job-b" {
		t.Fatalf("queue after cancel: %v", a.pending)
	}
	if err := a.runWithRetries(ctx, running); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled task ran: %v", err)
	}
	resumed := trainTask("job-a", 2)
	a.enqueue(resumed)
	if len(a.pending) != 2 || a.pending[1] != resumed {
		t.Fatalf("a task of the resumed job was not queued: %v", a.pending)
	}
}
