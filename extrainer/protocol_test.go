package extrainer

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/proto/concordpb"
)

// brokenTrainer is a real gRPC server that breaks the protocol in one
// chosen way, to check that the client refuses what it gets back.
type brokenTrainer struct {
	concordpb.UnimplementedTrainerServer
	mode string
}

func (b *brokenTrainer) Train(stream grpc.BidiStreamingServer[concordpb.TrainRequest, concordpb.TrainResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	total := int(first.GetStart().GetTotal())
	if b.mode == "reject early" {
		return status.Error(codes.InvalidArgument, "manifest version not supported")
	}
	if b.mode == "hang" {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if m.GetWeights().GetLast() {
			break
		}
	}
	vec := make([]byte, 4*total)
	for i := range total {
		binary.LittleEndian.PutUint32(vec[4*i:], math.Float32bits(0.5))
	}
	send := func(off int, data []byte, last bool) error {
		return stream.Send(&concordpb.TrainResponse{Msg: &concordpb.TrainResponse_Weights{Weights: &concordpb.WeightChunk{
			Offset: uint64(off), Data: data, Last: last}}})
	}
	result := func() error {
		return stream.Send(&concordpb.TrainResponse{Msg: &concordpb.TrainResponse_Result{Result: &concordpb.TrainResult{
			Samples: 10, Total: uint64(total), Device: "cpu", Metrics: map[string]float64{"loss": 0.1}}}})
	}
	switch b.mode {
	case "ok":
		if err := send(0, vec, true); err != nil {
			return err
		}
		return result()
	case "skip chunk":
		if err := send(0, vec[:40], false); err != nil {
			return err
		}
		if err := send(20, vec[40:], true); err != nil {
			return err
		}
		return result()
	case "short":
		if err := send(0, vec[:len(vec)-4], true); err != nil {
			return err
		}
		return result()
	case "nan":
		binary.LittleEndian.PutUint32(vec[8:], math.Float32bits(float32(math.NaN())))
		if err := send(0, vec, true); err != nil {
			return err
		}
		return result()
	case "odd bytes":
		return send(0, vec[:7], false)
	case "no result":
		return send(0, vec, true)
	}
	return status.Error(codes.Internal, "unknown mode")
}

func serveBroken(t *testing.T, mode string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	concordpb.RegisterTrainerServer(s, &brokenTrainer{mode: mode})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func TestClientRefusesBrokenTrainer(t *testing.T) {
	manifest, global := testManifest(1, 28, 28, 2, 4, 1)
	s := Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 0.01, Dataset: "d.npz"}
	for _, mode := range []string{"skip chunk", "short", "nan", "odd bytes", "no result"} {
		c := dial(t, serveBroken(t, mode))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Train(ctx, "j", 1, manifest, global, s, nil)
		cancel()
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: error %v, want ErrProtocol", mode, err)
		}
	}
	c := dial(t, serveBroken(t, "ok"))
	res, err := c.Train(context.Background(), "j", 1, manifest, global, s, nil)
	if err != nil || len(res.Weights) != len(global) || res.Weights[3] != 0.5 || res.Samples != 10 {
		t.Errorf("well-behaved server: %v, %d weights, samples %d", err, len(res.Weights), res.Samples)
	}
}

// TestEarlyRejectionKeepsItsReason: when the trainer refuses a round while
// the client is still sending a large vector, the client reports the
// trainer's status, not a bare EOF.
func TestEarlyRejectionKeepsItsReason(t *testing.T) {
	manifest, global := testManifest(1, 4, 4, 2, 160, 1) // ~1.4M values, several chunks
	c := dial(t, serveBroken(t, "reject early"))
	_, err := c.Train(context.Background(), "j", 1, manifest, global,
		Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 0.01, Dataset: "d.npz"}, nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("error %v; want the trainer's InvalidArgument", err)
	}
}

func TestTrainStopsOnCancel(t *testing.T) {
	manifest, global := testManifest(1, 28, 28, 2, 4, 1)
	c := dial(t, serveBroken(t, "hang"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Train(ctx, "j", 1, manifest, global,
		Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 0.01, Dataset: "d.npz"}, nil)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("error %v; want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Train returned %v after the deadline", d)
	}
}
