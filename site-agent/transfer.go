package siteagent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// ChunkSize is the payload of one upload chunk.
const ChunkSize = 1 << 20

// splitChunks cuts data into ChunkSize pieces.
func splitChunks(data []byte) [][]byte {
	var out [][]byte
	for off := 0; off < len(data); off += ChunkSize {
		out = append(out, data[off:min(off+ChunkSize, len(data))])
	}
	return out
}

// upload sends a prepared submission, resuming from the coordinator's last
// acknowledged chunk, and marks it complete in the state database once the
// coordinator confirms. Chunks are sent without waiting for each
// acknowledgement; acknowledgements are read concurrently.
func (a *Agent) upload(ctx context.Context, sub *submission, h *pb.UploadHeader) error {
	if sub.Complete {
		return nil
	}
	h.TotalChunks = uint32(sub.Chunks)
	h.TotalBytes = uint64(sub.Bytes)
	h.Sha256 = sub.SHA256
	h.Nonce = sub.Nonce
	h.SampleCount = sub.Samples
	h.Metrics = sub.Metrics
	h.LayoutHash = sub.Layout
	h.PrivacyReceipt = sub.Receipt
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.cli.Upload(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Header{Header: h}}); err != nil {
		return uploadErr(stream.RecvMsg(new(pb.UploadAck)), err)
	}
	ack, err := stream.Recv()
	if status.Code(err) == codes.AlreadyExists {
		// The coordinator has it already (its acknowledgement was lost on
		// the way back): done.
		return a.st.completeSubmission(sub, h, false)
	}
	if err != nil {
		return uploadErr(err, nil)
	}
	countersigned := ack.CountersignedReceipt
	if !ack.Complete {
		from := int(ack.Acknowledged)
		if from > 0 {
			a.log.Info("resuming upload", "upload", sub.Key, "from_chunk", from, "of", sub.Chunks)
		}
		acks := make(chan error, 1)
		go func() {
			for {
				m, err := stream.Recv()
				if err != nil {
					acks <- err
					return
				}
				if m.Complete {
					countersigned = m.CountersignedReceipt
					acks <- nil
					return
				}
			}
		}()
		err = readChunks(sub, from, func(i int, data []byte) error {
			return stream.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Chunk{Chunk: &pb.Chunk{Index: uint32(i), Data: data}}})
		})
		if err != nil && !errors.Is(err, io.EOF) {
			cancel()
			return uploadErr(<-acks, err)
		}
		if err := <-acks; err != nil {
			return uploadErr(err, nil)
		}
	}
	stream.CloseSend()
	if err := a.st.completeSubmission(sub, h, len(countersigned) > 0); err != nil {
		return err
	}
	a.keepCountersigned(h.JobId, sub, countersigned)
	return nil
}

// uploadErr prefers the coordinator's reason over a local send error.
func uploadErr(remote, local error) error {
	if remote != nil && !errors.Is(remote, io.EOF) {
		if s, ok := status.FromError(remote); ok && s.Code() != codes.Canceled {
			// Keep the code: it tells a refusal from a lost connection.
			if s.Code() == codes.Unavailable {
				return status.Errorf(s.Code(), "lost the connection during the upload: %s", s.Message())
			}
			return status.Errorf(s.Code(), "coordinator refused the upload: %s", s.Message())
		}
		return remote
	}
	if local != nil {
		return local
	}
	return errors.New("upload stream ended without confirmation")
}

// download fetches a whole blob of at most limit bytes.
func (a *Agent) download(ctx context.Context, blob string, limit int64) ([]byte, error) {
	var out []byte
	for attempt := 0; attempt < 3; attempt++ {
		stream, err := a.cli.Download(ctx, &pb.DownloadRequest{Blob: blob, FromChunk: 0})
		if err != nil {
			return nil, err
		}
		out = out[:0]
		for {
			c, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				if s, ok := status.FromError(err); ok && s.Code() == codes.PermissionDenied {
					return nil, permanentf("download %s: %s", blob, s.Message())
				}
				if s, ok := status.FromError(err); ok && s.Code() == codes.NotFound {
					return nil, fmt.Errorf("download %s: %s", blob, s.Message())
				}
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				break
			}
			if int64(len(out))+int64(len(c.Data)) > limit {
				return nil, permanentf("download %s: the blob is larger than the %d bytes the task allows", blob, limit)
			}
			out = append(out, c.Data...)
		}
	}
	return nil, fmt.Errorf("download %s: failed three times", blob)
}
