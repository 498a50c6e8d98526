package extrainer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/proto/concordpb"
)

// Shard bounds. A shard holds at most ShardExamples examples and at most
// MaxShardBytes bytes (the trainer refuses larger ones, see
// deploy/trainer/shards.py); a site's data is at most MaxShards shards.
const (
	ShardExamples = 2048
	MaxShardBytes = 256 << 20
	MaxShards     = 4096
	shardMagic    = "CONCORDSHARD1\n"
	shardAlign    = 64
	shardChunk    = 1 << 20 // bytes per ShardChunk
)

// Shard is one slice of the site's standardised training data, addressed
// by the SHA-256 of its encoding. It holds no copy of the data: it is
// encoded again from the dataset when sent.
type Shard struct {
	ID    string
	Size  int64
	data  learning.Dataset
	first int
	n     int
}

// Shards cuts ds (the output of the job's pipeline) into shards and hashes
// each. Only pixels, labels and segmentation masks go in: no headers,
// identifiers, file names or subgroups. Masks (segmentation data, which has
// no labels) must be binary; they travel as one byte a pixel.
func Shards(ds learning.Dataset) ([]Shard, error) {
	px, hw := ds.C*ds.H*ds.W, ds.H*ds.W
	seg := ds.Masks != nil
	switch {
	case ds.N < 1 || px < 1:
		return nil, fmt.Errorf("shards: the site's dataset is empty (%d examples of %d×%d×%d)", ds.N, ds.C, ds.H, ds.W)
	case len(ds.X) != ds.N*px || (!seg && len(ds.Y) != ds.N):
		return nil, fmt.Errorf("shards: dataset of %d examples has %d pixels and %d labels, want %d and %d", ds.N, len(ds.X), len(ds.Y), ds.N*px, ds.N)
	case seg && len(ds.Masks) != ds.N*hw:
		return nil, fmt.Errorf("shards: dataset of %d examples of %d×%d has %d mask pixels, want %d", ds.N, ds.H, ds.W, len(ds.Masks), ds.N*hw)
	}
	for i, v := range ds.Masks {
		if v != 0 && v != 1 {
			return nil, fmt.Errorf("shards: mask value %v at pixel %d of example %d; want 0 or 1", v, i%hw, i/hw)
		}
	}
	perEx := 4*px + 4
	if seg {
		perEx += hw
	}
	per := min(ShardExamples, (MaxShardBytes-4096)/perEx)
	if per < 1 {
		return nil, fmt.Errorf("shards: one example of %d×%d×%d is over the %d-byte shard bound", ds.C, ds.H, ds.W, MaxShardBytes)
	}
	count := (ds.N + per - 1) / per
	if count > MaxShards {
		return nil, fmt.Errorf("shards: %d examples need %d shards, over the bound of %d", ds.N, count, MaxShards)
	}
	out := make([]Shard, 0, count)
	for first := 0; first < ds.N; first += per {
		s := Shard{data: ds, first: first, n: min(per, ds.N-first)}
		h := sha256.New()
		n, err := s.writeTo(h)
		if err != nil {
			return nil, err
		}
		s.ID, s.Size = hex.EncodeToString(h.Sum(nil)), n
		out = append(out, s)
	}
	return out, nil
}

// writeTo encodes the shard: magic, uint32 header length, JSON header,
// zero padding to shardAlign, float32 pixels, int32 labels (little-endian;
// 0 for segmentation) and, with "masks": 1, one byte (0 or 1) a mask pixel.
func (s Shard) writeTo(w io.Writer) (int64, error) {
	d := s.data
	seg := d.Masks != nil
	hd := map[string]int{"n": s.n, "c": d.C, "h": d.H, "w": d.W}
	if seg {
		hd["masks"] = 1
	}
	hdr, _ := json.Marshal(hd)
	head := append([]byte(shardMagic), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(head[len(shardMagic):], uint32(len(hdr)))
	head = append(head, hdr...)
	for len(head)%shardAlign != 0 {
		head = append(head, 0)
	}
	total := int64(0)
	put := func(b []byte) error {
		k, err := w.Write(b)
		total += int64(k)
		return err
	}
	if err := put(head); err != nil {
		return total, err
	}
	px := d.C * d.H * d.W
	buf := make([]byte, 0, 64<<10)
	flush := func() error {
		err := put(buf)
		buf = buf[:0]
		return err
	}
	for _, v := range d.X[s.first*px : (s.first+s.n)*px] {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) == cap(buf) {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	for i := s.first; i < s.first+s.n; i++ {
		y := 0
		if !seg {
			y = d.Y[i]
		}
		if y < 0 || y > math.MaxInt32 {
			return total, fmt.Errorf("shards: label %d out of range", y)
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(y))
		if len(buf) == cap(buf) {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if seg {
		hw := d.H * d.W
		for _, v := range d.Masks[s.first*hw : (s.first+s.n)*hw] {
			buf = append(buf, byte(v))
			if len(buf) == cap(buf) {
				if err := flush(); err != nil {
					return total, err
				}
			}
		}
	}
	return total, flush()
}

// SyncShards makes the trainer's cache hold every shard: it asks which are
// missing and sends only those. It returns the number it sent.
func (c *Client) SyncShards(ctx context.Context, shards []Shard) (int, error) {
	ids := make([]string, len(shards))
	byID := make(map[string]Shard, len(shards))
	for i, s := range shards {
		ids[i], byID[s.ID] = s.ID, s
	}
	r, err := c.rpc.DataHave(ctx, &concordpb.DataHaveRequest{ShardIds: ids})
	if err != nil {
		return 0, fmt.Errorf("trainer %s: which shards it holds: %w", c.addr, err)
	}
	if len(r.GetMissing()) > len(shards) {
		return 0, fmt.Errorf("trainer %s: %w: %d shards missing of %d asked", c.addr, ErrProtocol, len(r.GetMissing()), len(shards))
	}
	for _, id := range r.GetMissing() {
		s, ok := byID[id]
		if !ok {
			return 0, fmt.Errorf("trainer %s: %w: it lacks shard %q, which was not asked about", c.addr, ErrProtocol, id)
		}
		if err := c.putShard(ctx, s); err != nil {
			return 0, err
		}
	}
	return len(r.GetMissing()), nil
}

// chunkWriter sends what it is given as ShardChunks of shardChunk bytes
// in order.
type chunkWriter struct {
	stream concordpb.Trainer_DataPutClient
	s      Shard
	buf    []byte
	off    uint64
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), shardChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == shardChunk {
			if err := w.flush(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush(last bool) error {
	ch := &concordpb.ShardChunk{Offset: w.off, Data: w.buf, Last: last}
	if w.off == 0 {
		ch.ShardId, ch.Size = w.s.ID, uint64(w.s.Size)
	}
	w.off += uint64(len(w.buf))
	err := w.stream.Send(ch)
	w.buf = w.buf[:0]
	return err
}

func (c *Client) putShard(ctx context.Context, s Shard) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.DataPut(ctx)
	if err != nil {
		return fmt.Errorf("trainer %s: send shard %.12s: %w", c.addr, s.ID, err)
	}
	w := &chunkWriter{stream: stream, s: s, buf: make([]byte, 0, shardChunk)}
	_, err = s.writeTo(w)
	if err == nil {
		err = w.flush(true)
	}
	// The trainer checks the bytes against the id; a dataset changed since
	// Shards fails there with InvalidArgument.
	if _, cerr := stream.CloseAndRecv(); err == nil || errors.Is(err, io.EOF) {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("trainer %s: send shard %.12s: %w", c.addr, s.ID, err)
	}
	return nil
}
