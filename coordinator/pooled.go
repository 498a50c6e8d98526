package coordinator

import (
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/privacy/he"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Pooled subgroup counts of a secure job. The validation sites are key
// holders (round.Config.ValidateOnly): they hold Shamir shares of the
// job's key but never train. With the final round's VALIDATE task each
// key-holding validation site is given a pool round, poolBit|r, which no
// training round can reach, so a party's one-encryption-per-round rule
// holds. It encrypts its unsuppressed per-subgroup confusion counts
// (evaluation.PooledCells) for that round and uploads them with the
// task's nonce; the coordinator adds the ciphertexts into one encrypted
// sum as it does a round's updates.
//
// The pool closes when every expected site has contributed or has
// answered its task otherwise (a receipt without counts, or a failure),
// or at the gate's receipt deadline. With fewer than two contributors it
// is not decrypted: the sum of one site is that site's counts. Otherwise
// the first t connected key holders are sent DECRYPT tasks for it (a new
// committee, with a new attempt, when a member disconnects before
// answering); their shares decrypt the sum, and only the sum, which is
// stored with the job, reported with Wilson intervals and small cells
// suppressed (evaluation.PooledReport), and signed into the manifest.
// The gate waits for the pool up to the same deadline; a pool that
// cannot complete by then is recorded as unavailable with the reason, and
// the gate decides on the receipts alone. Every step is persisted with
// the job record before a task is sent.

// poolBit marks a pool round: training rounds stay far below it.
const poolBit = 1 << 30

// kindPooledCounts is a validation site's encrypted counts upload.
// It is delivered outside the round machine, whose job has completed.
const kindPooledCounts round.Kind = "validation-counts"

// Pool states.
const (
	poolCollecting  = "pending"
	poolDecrypting  = "decrypting"
	poolDecrypted   = "decrypted"
	poolUnavailable = "unavailable"
)

// pooledState is a secure job's pool of validation counts.
type pooledState struct {
	Round int    `json:"round"` // poolBit | final round
	State string `json:"state"`
	// Expected are the key-holding validation sites asked for counts,
	// with the nonce of the task that asked each.
	Expected     map[string]string `json:"expected"`
	Contributors []string          `json:"contributors,omitempty"`
	Attempt      int               `json:"attempt,omitempty"`
	Committee    []string          `json:"committee,omitempty"`
	Delivered    map[string]bool   `json:"delivered,omitempty"`
	// Failed are key holders that reported they cannot decrypt: no later
	// committee includes them.
	Failed map[string]string `json:"failed,omitempty"`
	Reason string            `json:"reason,omitempty"`
	// Cells are the decrypted sum's figures, suppression applied.
	Cells []evaluation.PooledSubgroup `json:"cells,omitempty"`
}

func isPoolRound(r int) bool { return r&poolBit != 0 }

// valuesOf is the length of the vectors summed for round r.
func valuesOf(j *job, r int) int {
	if isPoolRound(r) {
		return evaluation.PooledLen()
	}
	return j.updateValues()
}

// planPoolLocked opens the pool for the final round's VALIDATE tasks.
func (c *Coordinator) planPoolLocked(j *job, r int, tasks []*validationTask) {
	if j.rec.Secure == nil || r != int(j.spec.Rounds) || j.rec.FoldGroup != "" {
		return
	}
	points := j.m.State().Points
	p := &pooledState{Round: poolBit | r, State: poolCollecting, Expected: map[string]string{}}
	for _, vt := range tasks {
		if _, holder := points[vt.Site]; holder && vt.Role == registry.RoleGlobal {
			p.Expected[vt.Site] = vt.Nonce
		}
	}
	j.rec.Pooled = p
}

// poolTaskFields makes a final VALIDATE task ask for encrypted counts.
func (c *Coordinator) poolTaskFields(j *job, vt *validationTask, t *pb.Task) {
	p := j.rec.Pooled
	if p == nil || p.Expected[vt.Site] != vt.Nonce || p.State != poolCollecting || vt.Round != p.Round&^poolBit {
		return
	}
	if err := c.secureTaskFields(j, round.Action{Site: vt.Site}, t); err != nil {
		c.log.Error("pooled counts: task fields", "job", j.rec.ID, "err", err)
		return
	}
	t.KeySharesBlob = relayBlob(j.rec.ID, vt.Site)
	t.PoolRound = uint32(p.Round)
}

// admitPooledLocked checks a pooled upload's header and returns the nonce
// it must carry and the check of its chunks.
func (c *Coordinator) admitPooledLocked(j *job, site string, kind round.Kind, h *pb.UploadHeader) (string, chunkCheck, error) {
	p := j.rec.Pooled
	if j.rec.Secure == nil || p == nil || int(h.Round) != p.Round {
		return "", nil, status.Errorf(codes.FailedPrecondition, "job %s collects no pooled validation counts for round %d", j.rec.ID, h.Round&^poolBit)
	}
	ps, err := j.rec.Secure.paramSet()
	if err != nil {
		return "", nil, status.Errorf(codes.Internal, "%v", err)
	}
	if want := he.CiphertextsFor(ps, evaluation.PooledLen()); int(h.TotalChunks) != want {
		return "", nil, status.Errorf(codes.InvalidArgument, "pooled counts and their decryption shares are %d ciphertexts (one per chunk), not %d", want, h.TotalChunks)
	}
	if kind == kindPooledCounts && h.Kind != pb.UploadKind_UPLOAD_KIND_VALIDATION_COUNTS {
		return "", nil, status.Error(codes.InvalidArgument, "pooled counts are sent as UPLOAD_KIND_VALIDATION_COUNTS")
	}
	if err := c.checkHeader(j, site, kind, h); err != nil {
		return "", nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if err := poolOpenFor(j, site, kind); err != nil {
		return "", nil, err
	}
	if kind == kindPooledCounts {
		want := p.Expected[site]
		return want, func(*uploadRecord, []byte) error { return nil }, c.checkNonce(want, site, h)
	}
	want := j.rec.Nonces[taskNonceKey(round.KindDecryption, p.Round, p.Attempt, site)]
	if err := c.checkNonce(want, site, h); err != nil {
		return "", nil, err
	}
	dec, err := c.decryptionAt(j, p.Round, p.Attempt)
	if err != nil {
		return "", nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	point := j.rec.Secure.Points[site]
	return want, func(_ *uploadRecord, data []byte) error { return dec.ValidateShare(point, data) }, nil
}

// poolOpenFor says whether the pool takes site's upload of kind now.
func poolOpenFor(j *job, site string, kind round.Kind) error {
	p := j.rec.Pooled
	switch kind {
	case kindPooledCounts:
		switch {
		case p.State != poolCollecting:
			return status.Errorf(codes.FailedPrecondition, "the pool of validation counts is closed (%s)", p.State)
		case slices.Contains(p.Contributors, site):
			return status.Errorf(codes.AlreadyExists, "site %s already sent its pooled counts", site)
		}
		return nil
	case round.KindDecryption:
		if p.State != poolDecrypting || !slices.Contains(p.Committee, site) {
			return status.Errorf(codes.FailedPrecondition, "site %s is not on the committee decrypting the pooled counts", site)
		}
		if p.Delivered[site] {
			return status.Errorf(codes.AlreadyExists, "site %s already sent its share of the pooled counts", site)
		}
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "a %s upload does not belong to the pool", kind)
}

func (c *Coordinator) checkNonce(want, site string, h *pb.UploadHeader) error {
	if want == "" || want != hex.EncodeToString(h.Nonce) {
		return status.Errorf(codes.PermissionDenied, "the upload's nonce does not match the task sent to %s (replayed or forged upload)", site)
	}
	return nil
}

// completePooledLocked adds a complete upload to the pool, in one
// transaction with the job record.
func (c *Coordinator) completePooledLocked(j *job, site string, kind round.Kind, name string, up *uploadRecord) error {
	p := j.rec.Pooled
	if p == nil || up.Round != p.Round {
		c.discardUpload(name)
		return status.Error(codes.FailedPrecondition, "no pool of validation counts is open for this upload")
	}
	if err := poolOpenFor(j, site, kind); err != nil {
		c.discardUpload(name)
		return err
	}
	// A new committee after this upload began voids its shares.
	if kind == round.KindDecryption && up.Nonce != j.rec.Nonces[taskNonceKey(kind, p.Round, p.Attempt, site)] {
		c.discardUpload(name)
		return status.Error(codes.FailedPrecondition, "these shares answer an earlier committee of the pool; a new one was chosen")
	}
	prevContrib, prevDelivered := slices.Clone(p.Contributors), maps.Clone(p.Delivered)
	if kind == kindPooledCounts {
		p.Contributors = append(p.Contributors, site)
		slices.Sort(p.Contributors)
	} else {
		if p.Delivered == nil {
			p.Delivered = map[string]bool{}
		}
		p.Delivered[site] = true
	}
	up.Complete = true
	err := c.saveJob(j, func(tx *bolt.Tx) error {
		if err := finishBlob(tx, name, blobInfo{Chunks: up.TotalChunks, Bytes: up.TotalBytes, SHA256: up.SHA256}); err != nil {
			return err
		}
		if kind == kindPooledCounts {
			agg, err := c.loadAggregateTx(tx, j, p.Round)
			if err != nil {
				return err
			}
			for i := 0; i < up.TotalChunks; i++ {
				if err := agg.Add(j.rec.Secure.Points[site], tx.Bucket(bBlobs).Get(chunkKey(name, i))); err != nil {
					return fmt.Errorf("encrypted counts: %w", err)
				}
			}
			data, err := agg.MarshalBinary()
			if err != nil {
				return err
			}
			if _, err := putBlob(tx, aggBlob(j.rec.ID, p.Round), data); err != nil {
				return err
			}
		}
		return putJSON(tx, bUploads, name, up)
	})
	if err != nil {
		up.Complete = false
		p.Contributors, p.Delivered = prevContrib, prevDelivered
		c.discardUpload(name)
		return status.Errorf(codes.InvalidArgument, "upload rejected: %v", err)
	}
	c.bus.emit(Event{Kind: EvUploadAccepted, Actor: "site:" + site, JobID: j.rec.ID, Round: p.Round &^ poolBit, Site: site,
		Detail: fmt.Sprintf("encrypted %s from %s accepted for the pool of round %d", kind, site, p.Round&^poolBit)})
	c.advancePoolLocked(j)
	if j.m.Done() {
		c.publishLocked(j)
	}
	return nil
}

// poolSettled says whether the gate may stop waiting for the pool.
func poolSettled(j *job) bool {
	p := j.rec.Pooled
	return p == nil || p.State == poolDecrypted || p.State == poolUnavailable
}

// advancePoolLocked moves the pool on: closes it when nothing more can
// arrive, picks a committee, replaces a member that left, and gives up at
// the deadline. Called on every pooled upload, receipt and tick.
func (c *Coordinator) advancePoolLocked(j *job) {
	p := j.rec.Pooled
	if poolSettled(j) {
		return
	}
	late := j.rec.Gate != nil && !c.now().Before(j.rec.Gate.Deadline)
	switch p.State {
	case poolCollecting:
		answered, _ := finalValidations(j)
		var waiting []string
		for site := range p.Expected {
			if _, done := answered[site]; !done && !slices.Contains(p.Contributors, site) {
				waiting = append(waiting, site)
			}
		}
		switch {
		case len(waiting) > 0 && !late:
			return
		case len(waiting) > 0:
			slices.Sort(waiting)
			c.settlePoolLocked(j, poolUnavailable, fmt.Sprintf("the receipt deadline passed before %v sent encrypted counts", waiting))
			return
		}
		switch n, t := len(p.Contributors), j.rec.Secure.heJob(j.rec.ID).Threshold; {
		case n == 0:
			c.settlePoolLocked(j, poolUnavailable, "no validation site sent encrypted counts")
			return
		case n == 1:
			c.settlePoolLocked(j, poolUnavailable, fmt.Sprintf("refused: %s is the only contributor, and decrypting a sum of one would reveal its counts", p.Contributors[0]))
			return
		case n < t:
			c.settlePoolLocked(j, poolUnavailable, fmt.Sprintf("refused: %d contributors, and no sum of fewer than the threshold %d is decrypted", n, t))
			return
		}
		c.newCommitteeLocked(j)
	case poolDecrypting:
		if late {
			c.settlePoolLocked(j, poolUnavailable, fmt.Sprintf("the committee %v did not decrypt the pool before the receipt deadline", p.Committee))
			return
		}
		if len(p.Committee) == 0 {
			c.newCommitteeLocked(j)
			return
		}
		if len(p.Delivered) == len(p.Committee) {
			c.combinePoolLocked(j)
			return
		}
		for _, s := range p.Committee {
			if !p.Delivered[s] && c.sessions[s] == nil {
				c.newCommitteeLocked(j) // a member left: choose another set
				return
			}
		}
	}
}

// newCommitteeLocked asks the first t connected key holders to decrypt
// the pool's sum; with fewer connected it waits (until the deadline).
func (c *Coordinator) newCommitteeLocked(j *job) {
	p := j.rec.Pooled
	st := j.m.State()
	var holders []string
	for s := range st.Points {
		if _, failed := p.Failed[s]; c.sessions[s] != nil && !st.Revoked[s] && !failed {
			holders = append(holders, s)
		}
	}
	slices.Sort(holders)
	t := j.rec.Secure.heJob(j.rec.ID).Threshold
	p.State = poolDecrypting
	if len(holders) < t {
		if len(p.Committee) > 0 || p.Reason == "" {
			p.Committee, p.Delivered = nil, nil
			p.Reason = fmt.Sprintf("waiting for key holders: %d of %d needed are connected", len(holders), t)
			c.persistPoolLocked(j)
		}
		return
	}
	p.Attempt++
	p.Committee, p.Delivered, p.Reason = holders[:t], map[string]bool{}, ""
	var tasks []*pb.Task
	for _, s := range p.Committee {
		task, err := c.buildTaskLocked(j, round.Action{Type: round.ActSendTask, Site: s, Kind: round.KindDecryption, Round: p.Round,
			Sites: slices.Clone(p.Committee), Attempt: p.Attempt})
		if err != nil {
			c.settlePoolLocked(j, poolUnavailable, "the decryption request could not be built: "+err.Error())
			return
		}
		tasks = append(tasks, task)
	}
	if !c.persistPoolLocked(j) {
		return
	}
	for i, task := range tasks {
		c.sessions[p.Committee[i]].send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}})
	}
	c.bus.emit(Event{Kind: EvRoundNote, Actor: "coordinator", JobID: j.rec.ID, Round: p.Round &^ poolBit,
		Detail: fmt.Sprintf("pooled validation counts of %v: decryption asked of %v", p.Contributors, p.Committee)})
}

// poolMemberFailedLocked takes a committee member that cannot decrypt
// out of the pool's committees and asks another set.
func (c *Coordinator) poolMemberFailedLocked(j *job, site, detail string) {
	p := j.rec.Pooled
	if p == nil || p.State != poolDecrypting || !slices.Contains(p.Committee, site) || p.Delivered[site] {
		return
	}
	if p.Failed == nil {
		p.Failed = map[string]string{}
	}
	p.Failed[site] = detail
	c.newCommitteeLocked(j)
}

// resendPoolLocked sends a reconnecting committee member its DECRYPT task.
func (c *Coordinator) resendPoolLocked(j *job, site string) {
	p := j.rec.Pooled
	if p == nil || p.State != poolDecrypting || !slices.Contains(p.Committee, site) || p.Delivered[site] || c.sessions[site] == nil {
		return
	}
	task, err := c.buildTaskLocked(j, round.Action{Type: round.ActSendTask, Site: site, Kind: round.KindDecryption, Round: p.Round,
		Sites: slices.Clone(p.Committee), Attempt: p.Attempt})
	if err == nil {
		c.sessions[site].send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}})
	}
}

// combinePoolLocked decrypts the sum from the committee's shares.
func (c *Coordinator) combinePoolLocked(j *job) {
	p := j.rec.Pooled
	dec, err := c.decryptionAt(j, p.Round, p.Attempt)
	for _, site := range p.Committee {
		if err != nil {
			break
		}
		err = c.st.eachChunk(uploadBlob(j.rec.ID, round.KindDecryption, p.Round, site), 0, func(_ int, data []byte) error {
			return dec.AddShare(j.rec.Secure.Points[site], data)
		})
	}
	var res he.Result
	if err == nil {
		res, err = dec.Result()
	}
	if err == nil && math.Abs(res.TotalWeight-float64(len(p.Contributors))) > 0.5 {
		err = fmt.Errorf("the sum holds %.1f contributions, %d were added", res.TotalWeight, len(p.Contributors))
	}
	var cells []evaluation.PooledSubgroup
	if err == nil {
		cells, err = evaluation.PooledReport(res.Sum, int(j.spec.GetValidation().GetMinSubgroupCount()))
	}
	if err != nil {
		c.settlePoolLocked(j, poolUnavailable, "decryption failed: "+err.Error())
		return
	}
	p.Cells = cells
	c.settlePoolLocked(j, poolDecrypted, "")
}

// settlePoolLocked ends the pool and drops its uploads: the encrypted
// counts and the shares are of no more use.
func (c *Coordinator) settlePoolLocked(j *job, state, reason string) {
	p := j.rec.Pooled
	p.State, p.Reason = state, reason
	err := c.saveJob(j, func(tx *bolt.Tx) error {
		return dropUploads(tx, j.rec.ID, func(up uploadRecord) bool { return up.Round == p.Round })
	})
	if err != nil {
		c.log.Error("persist the pooled counts", "job", j.rec.ID, "err", err)
		return
	}
	detail := fmt.Sprintf("pooled validation counts of %v decrypted as a sum", p.Contributors)
	if state != poolDecrypted {
		detail = "pooled validation counts unavailable: " + reason
	}
	c.bus.emit(Event{Kind: EvRoundNote, Actor: "coordinator", JobID: j.rec.ID, Round: p.Round &^ poolBit, Detail: detail})
}

func (c *Coordinator) persistPoolLocked(j *job) bool {
	if err := c.saveJob(j, nil); err != nil {
		c.log.Error("persist the pool of validation counts", "job", j.rec.ID, "err", err)
		return false
	}
	return true
}

// pooledProto reports the pool in a job's status.
func (p *pooledState) proto() *pb.PooledSubgroups {
	if p == nil {
		return nil
	}
	out := &pb.PooledSubgroups{State: p.State, Sites: slices.Clone(p.Contributors), Reason: p.Reason, Note: evaluation.PooledNote}
	for _, g := range p.Cells {
		cell := &pb.PooledCell{Field: g.Field, Value: g.Value, Suppressed: g.Suppressed, Examples: uint64(g.Examples)}
		if !g.Suppressed {
			cell.Confusion, cell.Metrics, cell.Lower, cell.Upper = map[string]uint64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
			for k, n := range g.Confusion {
				cell.Confusion[k] = uint64(max(n, 0))
			}
			for k, e := range g.Metrics {
				cell.Metrics[k], cell.Lower[k], cell.Upper[k] = e.Value, e.Lower, e.Upper
			}
		}
		out.Cells = append(out.Cells, cell)
	}
	return out
}
