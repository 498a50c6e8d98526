package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// rawSite is a hand-driven site: a real certificate and the real wire, but
// the test decides what it sends.
type rawSite struct {
	agent  pb.AgentClient
	tasks  chan *pb.Task
	stream pb.Agent_ConnectClient
	// closed receives the error that ended the task stream.
	closed chan error
	// kit is the site's certificate and key.
	kit pki.Kit
}

func newRawSite(t *testing.T, ctx context.Context, f *Federation, name string) *rawSite {
	kit, err := f.Kit(pki.RoleSite, name)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := f.Dial(kit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &rawSite{agent: pb.NewAgentClient(conn), tasks: make(chan *pb.Task, 8), closed: make(chan error, 1), kit: kit}
	stream, err := s.agent.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.stream = stream
	if err := stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Hello{Hello: &pb.Hello{Version: "raw"}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				s.closed <- err
				return
			}
			if task := m.GetTask(); task != nil {
				s.tasks <- task
			}
		}
	}()
	return s
}

func (s *rawSite) task(t *testing.T) *pb.Task {
	select {
	case task := <-s.tasks:
		return task
	case <-time.After(30 * time.Second):
		t.Fatal("no task arrived")
		return nil
	}
}

// send uploads data in one chunk under header h (sizes and checksum filled in).
func (s *rawSite) send(ctx context.Context, h *pb.UploadHeader, data []byte) error {
	stream, err := s.agent.Upload(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	h.TotalChunks, h.TotalBytes, h.Sha256 = 1, uint64(len(data)), sum[:]
	if err := stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Header{Header: h}}); err != nil {
		return err
	}
	ack, err := stream.Recv()
	if err != nil {
		return err
	}
	if ack.Complete {
		return nil
	}
	if err := stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Chunk{Chunk: &pb.Chunk{Index: 0, Data: data}}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	for {
		ack, err := stream.Recv()
		if err != nil {
			return err
		}
		if ack.Complete {
			return nil
		}
	}
}

func zeros(params int, poison int) []byte {
	b := make([]byte, 4*params)
	if poison >= 0 {
		binary.LittleEndian.PutUint32(b[4*poison:], math.Float32bits(float32(math.NaN())))
	}
	return b
}

// TestMalformedAndReplayedUploads: each bad upload is refused with a code
// and a reason, and a good one after them still counts.
func TestMalformedAndReplayedUploads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	site := newRawSite(t, ctx, f, "raw-site")
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: uploads\nrounds: 2\nmin_sites: 1\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	job, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	t1 := site.task(t)
	params := int(t1.InputParams)
	header := func(task *pb.Task) *pb.UploadHeader {
		return &pb.UploadHeader{JobId: job.Id, Round: task.Round, Nonce: task.Nonce, Kind: pb.UploadKind_UPLOAD_KIND_UPDATE,
			SampleCount: 10, LayoutHash: task.LayoutHash}
	}
	expect := func(name string, err error, code codes.Code, reason string) {
		t.Helper()
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), reason) {
			t.Errorf("%s: got %v, want %v containing %q", name, err, code, reason)
		}
	}
	forged := header(t1)
	forged.Nonce = []byte("not the task's nonce")
	expect("forged nonce", site.send(ctx, forged, zeros(params, -1)), codes.PermissionDenied, "nonce does not match")
	expect("wrong size", site.send(ctx, header(t1), zeros(params-1, -1)), codes.InvalidArgument, "float32 parameters")
	expect("NaN value", site.send(ctx, header(t1), zeros(params, 17)), codes.InvalidArgument, "parameter 17 is NaN")
	wrongLayout := header(t1)
	wrongLayout.LayoutHash = "0123"
	expect("wrong layout", site.send(ctx, wrongLayout, zeros(params, -1)), codes.InvalidArgument, "layout")
	noSamples := header(t1)
	noSamples.SampleCount = 0
	expect("no samples", site.send(ctx, noSamples, zeros(params, -1)), codes.InvalidArgument, "sample count")
	future := header(t1)
	future.Round = 5
	expect("future round", site.send(ctx, future, zeros(params, -1)), codes.FailedPrecondition, "has not started")

	if err := site.send(ctx, header(t1), zeros(params, -1)); err != nil {
		t.Fatalf("a good update was refused: %v", err)
	}
	// The round closes (one site); a second copy is now late, and round 2's
	// task brings a new nonce that the old upload cannot reuse.
	t2 := site.task(t)
	if t2.Round != 2 || string(t2.Nonce) == string(t1.Nonce) {
		t.Fatalf("round 2 task: round %d, nonce reused %v", t2.Round, string(t2.Nonce) == string(t1.Nonce))
	}
	expect("replay of round 1", site.send(ctx, header(t1), zeros(params, -1)), codes.FailedPrecondition, "has closed")
	replayNonce := header(t2)
	replayNonce.Nonce = t1.Nonce
	expect("round 1 nonce in round 2", site.send(ctx, replayNonce, zeros(params, -1)), codes.PermissionDenied, "nonce does not match")
	if err := site.send(ctx, header(t2), zeros(params, -1)); err != nil {
		t.Fatalf("round 2 update refused: %v", err)
	}
	final := watchToEnd(t, ctx, f, job.Id)
	if final.State != "completed" || len(final.Rounds) != 2 {
		t.Fatalf("job %s after %d rounds: %s", final.State, len(final.Rounds), final.Reason)
	}
	evs, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{JobId: job.Id})
	if err != nil {
		t.Fatal(err)
	}
	rejected := 0
	for _, e := range evs.Events {
		if e.Kind == "upload.rejected" {
			rejected++
		}
	}
	if rejected < 6 {
		t.Errorf("only %d rejections in the audit trail", rejected)
	}
}

// TestUploadResumesFromLastAcknowledgedChunk breaks an upload after two of
// its chunks and checks the coordinator answers the retry with the resume
// point and completes the upload from there.
func TestUploadResumesFromLastAcknowledgedChunk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	site := newRawSite(t, ctx, f, "raw-site")
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: resume\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	job, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	task := site.task(t)
	data := zeros(int(task.InputParams), -1)
	third := (len(data)/3 + 3) / 4 * 4
	chunks := [][]byte{data[:third], data[third : 2*third], data[2*third:]}
	sum := sha256.Sum256(data)
	h := &pb.UploadHeader{JobId: job.Id, Round: 1, Nonce: task.Nonce, Kind: pb.UploadKind_UPLOAD_KIND_UPDATE, SampleCount: 10,
		LayoutHash: task.LayoutHash, TotalChunks: 3, TotalBytes: uint64(len(data)), Sha256: sum[:]}
	attempt := func(from, upto int) (first *pb.UploadAck, last *pb.UploadAck) {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		stream, err := site.agent.Upload(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Header{Header: h}}); err != nil {
			t.Fatal(err)
		}
		if first, err = stream.Recv(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < upto; i++ {
			if err := stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Chunk{Chunk: &pb.Chunk{Index: uint32(i), Data: chunks[i]}}}); err != nil {
				t.Fatal(err)
			}
			if last, err = stream.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		return first, last // the connection drops here (context cancelled)
	}
	first, last := attempt(0, 2)
	if first.Acknowledged != 0 || last.Acknowledged != 2 {
		t.Fatalf("first attempt: resume point %d, acknowledged %d", first.Acknowledged, last.Acknowledged)
	}
	first, last = attempt(2, 3)
	if first.Acknowledged != 2 || !last.Complete {
		t.Fatalf("retry: resume point %d (want 2), complete %v", first.Acknowledged, last.Complete)
	}
	if final := watchToEnd(t, ctx, f, job.Id); final.State != "completed" {
		t.Fatalf("job %s: %s", final.State, final.Reason)
	}
}
