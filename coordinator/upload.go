package coordinator

import (
	"crypto"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// maxChunkBytes bounds one chunk's payload.
const maxChunkBytes = ChunkSize

// Upload receives one artefact in chunks. It validates the header against
// the round (late, duplicate, not a participant) and the task's nonce
// (replay, forgery) before acknowledging anything, answers with the resume
// point, and persists every chunk before acknowledging it.
func (a *agentService) Upload(stream pb.Agent_UploadServer) error {
	c := a.c
	id, err := a.site(stream.Context())
	if err != nil {
		return err
	}
	site := id.Name
	ctx, release, err := c.trackUpload(stream.Context(), id)
	if err != nil {
		return err
	}
	defer release()
	recv := func() (*pb.UploadMessage, error) {
		return withinValue(ctx, c.cfg.StreamTimeout, "waiting for the next chunk", stream.Recv)
	}
	send := func(m *pb.UploadAck) error {
		return within(ctx, c.cfg.StreamTimeout, "acknowledging", func() error { return stream.Send(m) })
	}
	first, err := recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "an upload must start with its header")
	}
	kind, ok := uploadToKind[h.Kind]
	if !ok {
		return status.Errorf(codes.InvalidArgument, "unknown upload kind %v", h.Kind)
	}
	name := uploadBlob(h.JobId, kind, int(h.Round), site)
	up, j, check, err := c.admitUpload(site, kind, h, name, peerKey(stream.Context()))
	if err != nil {
		c.bus.emit(Event{Kind: EvUploadRejected, Actor: "site:" + site, JobID: h.JobId, Round: int(h.Round), Site: site, Detail: "upload rejected: " + status.Convert(err).Message()})
		return err
	}
	if err := send(&pb.UploadAck{Acknowledged: uint32(up.Received), Complete: up.Complete}); err != nil {
		return err
	}
	if up.Complete {
		return nil
	}
	hasher := sha256.New()
	if len(up.HashState) > 0 {
		if err := hasher.(encoding.BinaryUnmarshaler).UnmarshalBinary(up.HashState); err != nil {
			return status.Errorf(codes.Internal, "restore upload hash: %v", err)
		}
	}
	for up.Received < up.TotalChunks {
		m, err := recv()
		if err == io.EOF {
			return status.Errorf(codes.Aborted, "upload ended after %d of %d chunks; resume it", up.Received, up.TotalChunks)
		}
		if err != nil {
			return err
		}
		ch := m.GetChunk()
		if ch == nil || int(ch.Index) != up.Received {
			return status.Errorf(codes.InvalidArgument, "expected chunk %d", up.Received)
		}
		if len(ch.Data) == 0 || len(ch.Data) > maxChunkBytes || up.Bytes+int64(len(ch.Data)) > up.TotalBytes {
			return status.Errorf(codes.InvalidArgument, "chunk %d has %d bytes: chunks must hold 1..%d bytes and not exceed the declared total %d",
				ch.Index, len(ch.Data), maxChunkBytes, up.TotalBytes)
		}
		if err := check(up, ch.Data); err != nil {
			return status.Errorf(codes.InvalidArgument, "chunk %d rejected: %v", ch.Index, err)
		}
		hasher.Write(ch.Data)
		up.Received++
		up.Bytes += int64(len(ch.Data))
		up.HashState, _ = hasher.(encoding.BinaryMarshaler).MarshalBinary()
		if err := c.st.db.Update(func(tx *bolt.Tx) error {
			if err := putBlobChunk(tx, name, int(ch.Index), ch.Data); err != nil {
				return err
			}
			return putJSON(tx, bUploads, name, up)
		}); err != nil {
			return status.Errorf(codes.Unavailable, "persist chunk: %v", err)
		}
		if up.Received < up.TotalChunks {
			if err := send(&pb.UploadAck{Acknowledged: uint32(up.Received)}); err != nil {
				return err
			}
		}
	}
	if up.Bytes != up.TotalBytes || hex.EncodeToString(hasher.Sum(nil)) != up.SHA256 {
		c.discardUpload(name)
		return status.Errorf(codes.DataLoss, "upload checksum or size mismatch (%d of %d bytes): it was discarded; send it again", up.Bytes, up.TotalBytes)
	}
	countersigned, err := c.completeUpload(j, id, kind, name, up)
	if err != nil {
		c.bus.emit(Event{Kind: EvUploadRejected, Actor: "site:" + site, JobID: h.JobId, Round: int(h.Round), Site: site, Detail: "upload rejected: " + status.Convert(err).Message()})
		return err
	}
	return send(&pb.UploadAck{Acknowledged: uint32(up.Received), Complete: true, CountersignedReceipt: countersigned})
}

// admitUpload checks an upload header and returns the (possibly resumed)
// upload record.
func (c *Coordinator) admitUpload(site string, kind round.Kind, h *pb.UploadHeader, name string, sitePub crypto.PublicKey) (*uploadRecord, *job, chunkCheck, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[h.JobId]
	if j == nil {
		return nil, nil, nil, status.Errorf(codes.NotFound, "job %s does not exist", q(h.JobId))
	}
	want, check, err := c.admitRoundUpload(j, site, kind, h, sitePub)
	if pooledUpload(kind, h) {
		want, check, err = c.admitPooledLocked(j, site, kind, h)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if up, err := c.uploadRecord(name); err == nil {
		if up.Nonce == want && up.SHA256 == hex.EncodeToString(h.Sha256) && up.TotalChunks == int(h.TotalChunks) {
			return up, j, check, nil // resume
		}
		c.discardUpload(name) // a different attempt: start over
	}
	up := &uploadRecord{Site: site, Kind: kind, Round: int(h.Round), Nonce: want, TotalChunks: int(h.TotalChunks),
		TotalBytes: int64(h.TotalBytes), SHA256: hex.EncodeToString(h.Sha256), Samples: h.SampleCount, Metrics: h.Metrics,
		Recipients: h.Recipients, Receipt: h.PrivacyReceipt}
	if err := c.st.db.Update(func(tx *bolt.Tx) error { return putJSON(tx, bUploads, name, up) }); err != nil {
		return nil, nil, nil, status.Errorf(codes.Unavailable, "persist upload: %v", err)
	}
	return up, j, check, nil
}

// pooledUpload says whether an upload belongs to a pool of validation
// counts (pooled.go) rather than to the round machine.
func pooledUpload(kind round.Kind, h *pb.UploadHeader) bool {
	return kind == kindPooledCounts || isPoolRound(int(h.Round))
}

// admitRoundUpload checks an upload the round machine expects and returns
// the nonce it must carry and the check of its chunks.
func (c *Coordinator) admitRoundUpload(j *job, site string, kind round.Kind, h *pb.UploadHeader, sitePub crypto.PublicKey) (string, chunkCheck, error) {
	if pooledUpload(kind, h) {
		return "", nil, nil
	}
	if err := j.m.Accept(site, kind, int(h.Round)); err != nil {
		if errors.Is(err, round.ErrDuplicate) {
			return "", nil, status.Errorf(codes.AlreadyExists, "%v", err)
		}
		return "", nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	want := j.rec.Nonces[taskNonceKey(kind, int(h.Round), j.m.State().Attempt, site)]
	if want == "" || want != hex.EncodeToString(h.Nonce) {
		return "", nil, status.Errorf(codes.PermissionDenied, "the upload's nonce does not match the task sent to %s for round %d (replayed or forged upload)", site, h.Round)
	}
	if err := c.checkHeader(j, site, kind, h); err != nil {
		return "", nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if kind == round.KindUpdate {
		if err := checkReceipt(j, site, sitePub, h); err != nil {
			return "", nil, status.Errorf(codes.InvalidArgument, "%v", err)
		}
	}
	check, err := c.chunkChecker(j, kind, int(h.Round), site)
	if err != nil {
		return "", nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return want, check, nil
}

func (c *Coordinator) checkHeader(j *job, site string, kind round.Kind, h *pb.UploadHeader) error {
	if h.TotalChunks == 0 || h.TotalBytes == 0 || len(h.Sha256) != sha256.Size {
		return errors.New("header must declare chunks, bytes and a SHA-256")
	}
	if minChunks := (h.TotalBytes + maxChunkBytes - 1) / maxChunkBytes; uint64(h.TotalChunks) < minChunks || uint64(h.TotalChunks) > h.TotalBytes {
		return fmt.Errorf("%d chunks cannot carry %d bytes at %d bytes per chunk at most", h.TotalChunks, h.TotalBytes, maxChunkBytes)
	}
	if len(h.Metrics) > maxMetrics {
		return fmt.Errorf("%d metrics: at most %d", len(h.Metrics), maxMetrics)
	}
	for k, v := range h.Metrics {
		if len(k) == 0 || len(k) > maxMetricKey {
			return fmt.Errorf("metric name %s: names hold 1..%d bytes", q(k), maxMetricKey)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("metric %s is %v", q(k), v)
		}
	}
	if len(h.LayoutHash) > 128 {
		return fmt.Errorf("layout hash %s is too long", q(h.LayoutHash))
	}
	switch kind {
	case round.KindUpdate:
		if h.LayoutHash != j.rec.LayoutHash {
			return fmt.Errorf("update was trained on layout %s, the job's model has layout %s", q(h.LayoutHash), j.rec.LayoutHash)
		}
		if h.SampleCount == 0 || h.SampleCount > 1<<40 {
			return fmt.Errorf("sample count %d is implausible", h.SampleCount)
		}
		if j.rec.Secure == nil {
			if h.Kind != pb.UploadKind_UPLOAD_KIND_UPDATE {
				return errors.New("this job does not use secure aggregation: send a plaintext update")
			}
			if n := j.updateValues(); h.TotalBytes != uint64(4*n) {
				return fmt.Errorf("update has %d bytes, the model has %d float32 parameters and the update %d values (%d bytes)", h.TotalBytes, j.rec.Params, n, 4*n)
			}
			return nil
		}
		if h.Kind != pb.UploadKind_UPLOAD_KIND_ENCRYPTED_UPDATE {
			return errors.New("this job uses secure aggregation: plaintext updates are refused")
		}
	}
	if j.rec.Secure != nil {
		return c.checkSecureHeader(j, site, kind, h)
	}
	return nil
}

// chunkCheck validates one chunk's content before it is persisted.
type chunkCheck func(up *uploadRecord, data []byte) error

// chunkChecker captures, under the coordinator's lock, what validating an
// upload's chunks needs, so the upload loop itself runs without the lock.
func (c *Coordinator) chunkChecker(j *job, kind round.Kind, r int, site string) (chunkCheck, error) {
	if j.rec.Secure != nil {
		if kind != round.KindDecryption {
			return func(*uploadRecord, []byte) error { return nil }, nil // ciphertexts: checked all together at completion
		}
		dec, err := c.decryption(j, r)
		if err != nil {
			return nil, err
		}
		point := j.rec.Secure.Points[site]
		return func(_ *uploadRecord, data []byte) error { return dec.ValidateShare(point, data) }, nil
	}
	if kind != round.KindUpdate {
		return func(*uploadRecord, []byte) error { return nil }, nil
	}
	limit, limitWhy := updateNormLimit(j.spec)
	return func(up *uploadRecord, data []byte) error {
		if len(data)%4 != 0 {
			return errors.New("plaintext update chunks must hold whole float32 values")
		}
		sq := 0.0
		for i := 0; i < len(data); i += 4 {
			f := float64(math.Float32frombits(uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("parameter %d is %v", int(up.Bytes/4)+i/4, f)
			}
			sq += f * f
		}
		up.NormSq += sq
		if norm := math.Sqrt(up.NormSq); norm > limit {
			return fmt.Errorf("the update's L2 norm exceeds %g (%s): %s", limit, limitWhy, clipAdvice)
		}
		return nil
	}, nil
}

func (c *Coordinator) discardUpload(name string) {
	_ = c.st.db.Update(func(tx *bolt.Tx) error {
		if err := deleteBlob(tx, name); err != nil {
			return err
		}
		return tx.Bucket(bUploads).Delete([]byte(name))
	})
}

// completeUpload marks an upload complete, applies it (secure jobs: adds
// the ciphertexts to the round's encrypted sum) and records the delivery in
// the job's state machine, all in one transaction: a crash leaves either
// all of it or none, so an upload is never counted twice or lost.
func (c *Coordinator) completeUpload(j *job, id Identity, kind round.Kind, name string, up *uploadRecord) ([]byte, error) {
	site := id.Name
	if why := c.certProblem(id.Serial); why != "" {
		c.discardUpload(name)
		return nil, status.Errorf(codes.PermissionDenied, "site %s: %s before its upload completed; the upload was discarded", site, why)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked[id.Serial] {
		c.discardUpload(name)
		return nil, status.Errorf(codes.PermissionDenied, "site %s was revoked before its upload completed; the upload was discarded", site)
	}
	if isPoolRound(up.Round) {
		return nil, c.completePooledLocked(j, site, kind, name, up)
	}
	if err := j.m.Accept(site, kind, up.Round); err != nil {
		c.discardUpload(name)
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	var countersigned []byte
	if len(up.Receipt) > 0 {
		k := c.cfg.AuditKey
		var err error
		if countersigned, err = dp.Countersign(up.Receipt, k.PrivateKey(), k.ID()); err != nil {
			c.discardUpload(name)
			return nil, status.Errorf(codes.Internal, "countersign the privacy receipt: %v", err)
		}
	}
	prev := j.m.State()
	prevSecure := cloneSecure(j.rec.Secure)
	up.Complete = true
	acts := j.m.Step(round.Event{Type: round.EvDelivered, Now: c.now(), Site: site, Kind: kind, Round: up.Round})
	j.rec.State = j.m.State()
	err := c.saveJob(j, func(tx *bolt.Tx) error {
		if countersigned != nil {
			if err := tx.Bucket(bReceipts).Put([]byte(receiptKey(j.rec.ID, up.Round, site)), countersigned); err != nil {
				return err
			}
		}
		if err := finishBlob(tx, name, blobInfo{Chunks: up.TotalChunks, Bytes: up.TotalBytes, SHA256: up.SHA256}); err != nil {
			return err
		}
		if j.rec.Secure != nil {
			if err := c.secureOnComplete(tx, j, site, kind, name, up); err != nil {
				return err
			}
		}
		return putJSON(tx, bUploads, name, up)
	})
	if err != nil {
		// Nothing was written: put the machine back and drop the upload.
		up.Complete = false
		j.m, _ = round.Restore(machineConfig(j.spec), prev)
		j.rec.State, j.rec.Secure = prev, prevSecure
		c.discardUpload(name)
		return nil, status.Errorf(codes.InvalidArgument, "upload rejected: %v", err)
	}
	if rec := c.siteLocked(site); rec.LastFailure != nil {
		rec.LastFailure = nil // it delivers again: the old failure no longer describes it
		c.saveSiteLocked(rec)
	}
	c.bus.emit(Event{Kind: EvUploadAccepted, Actor: "site:" + site, JobID: j.rec.ID, Round: up.Round, Site: site,
		Detail: fmt.Sprintf("%s from %s accepted: %d bytes in %d chunks", kind, site, up.TotalBytes, up.TotalChunks)})
	if countersigned != nil {
		sum := sha256.Sum256(countersigned)
		c.bus.emit(Event{Kind: EvPrivacyReceipt, Actor: "site:" + site, JobID: j.rec.ID, Round: up.Round, Site: site,
			Detail: receiptDetail(up.Receipt), Data: []audit.DataField{{Name: "privacy-receipt", Size: uint64(len(countersigned)), SHA256: sum}}})
	}
	c.execute(j, acts)
	return countersigned, nil
}

// Download streams a blob a task named. Sites may read the global models,
// decryption requests and relayed shares of jobs they take part in (and
// only the shares relayed to them). Each chunk is copied out of the
// database before it is sent, so a peer that stops reading holds no
// transaction, and each send is bounded by StreamTimeout.
func (a *agentService) Download(req *pb.DownloadRequest, stream pb.Agent_DownloadServer) error {
	c := a.c
	id, err := a.site(stream.Context())
	if err != nil {
		return err
	}
	site := id.Name
	if !blobReadableBy(req.Blob, site) || !c.jobMember(blobJob(req.Blob), site) || !c.localModelReadable(req.Blob, site) {
		return status.Errorf(codes.PermissionDenied, "blob %s is not readable by site %s: it belongs to a job the site is not part of, or to another site", q(req.Blob), site)
	}
	ctx := stream.Context()
	err = c.st.eachChunk(req.Blob, int(req.FromChunk), func(i int, data []byte) error {
		return within(ctx, c.cfg.StreamTimeout, "sending a chunk to "+site, func() error {
			return stream.Send(&pb.Chunk{Index: uint32(i), Data: data})
		})
	})
	if errors.Is(err, ErrNotFound) {
		return status.Errorf(codes.NotFound, "blob %s does not exist", q(req.Blob))
	}
	return err
}

// blobJob returns the job a blob name belongs to ("" if none).
func blobJob(name string) string {
	parts := strings.SplitN(name, "/", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

// jobMember says whether site takes part in a job: listed in it, or sent
// one of its tasks.
func (c *Coordinator) jobMember(jobID, site string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[jobID]
	return j != nil && c.jobMemberLocked(j, site)
}

func (c *Coordinator) jobMemberLocked(j *job, site string) bool {
	if slices.Contains(j.spec.Sites, site) || slices.Contains(j.spec.ValidationSites, site) {
		return true
	}
	if j.rec.Sites[site] {
		return true
	}
	// Jobs stored before Sites was recorded: a task nonce names the site.
	suffix := "/" + site
	for k := range j.rec.Nonces {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// uploadRecord tracks one chunked upload. It is written in the same
// transaction as each chunk, before the chunk is acknowledged.
type uploadRecord struct {
	Site        string             `json:"site"`
	Kind        round.Kind         `json:"kind"`
	Round       int                `json:"round"`
	Nonce       string             `json:"nonce"`
	TotalChunks int                `json:"total_chunks"`
	TotalBytes  int64              `json:"total_bytes"`
	SHA256      string             `json:"sha256"`
	HashState   []byte             `json:"hash_state"`
	Received    int                `json:"received"`
	Bytes       int64              `json:"bytes"`
	Complete    bool               `json:"complete"`
	Samples     uint64             `json:"samples"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Recipients  []string           `json:"recipients,omitempty"`
	// NormSq is the running sum of squares of a plaintext update's values.
	NormSq float64 `json:"norm_sq,omitempty"`
	// Receipt is the site's signed privacy receipt for the update.
	Receipt []byte `json:"receipt,omitempty"`
}

const clipAdvice = "the site must clip its update (the agent clips to training.clip_norm before sending)"

// updateNormLimit is the largest L2 norm the coordinator accepts for a
// plaintext update: the job's clip_norm (with room for float32 rounding),
// or maxUnclippedNorm when the job does not clip. Encrypted updates cannot
// be checked here; see the README's threat model for the site-side guard.
func updateNormLimit(spec *pb.JobSpec) (float64, string) {
	if c := spec.GetTraining().GetClipNorm(); c > 0 {
		return c*(1+1e-4) + 1e-6, "the job's training.clip_norm"
	}
	return maxUnclippedNorm, "the bound for jobs without training.clip_norm"
}
