package coordinator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/concord-fl/concord/coordinator/round"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func nonceKey(kind round.Kind, r int, site string) string {
	return fmt.Sprintf("%s/%d/%s", kind, r, site)
}

var kindToTask = map[round.Kind]pb.TaskKind{
	round.KindKeyShare:     pb.TaskKind_TASK_KIND_KEY_SETUP,
	round.KindShamirShares: pb.TaskKind_TASK_KIND_KEY_SHARES,
	round.KindUpdate:       pb.TaskKind_TASK_KIND_TRAIN,
	round.KindDecryption:   pb.TaskKind_TASK_KIND_DECRYPT,
}

var uploadToKind = map[pb.UploadKind]round.Kind{
	pb.UploadKind_UPLOAD_KIND_UPDATE:            round.KindUpdate,
	pb.UploadKind_UPLOAD_KIND_ENCRYPTED_UPDATE:  round.KindUpdate,
	pb.UploadKind_UPLOAD_KIND_KEY_SHARE:         round.KindKeyShare,
	pb.UploadKind_UPLOAD_KIND_SHAMIR_SHARES:     round.KindShamirShares,
	pb.UploadKind_UPLOAD_KIND_DECRYPTION_SHARE:  round.KindDecryption,
	pb.UploadKind_UPLOAD_KIND_VALIDATION_COUNTS: kindPooledCounts,
}

func taskKindName(k pb.TaskKind) string {
	switch k {
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		return "key setup"
	case pb.TaskKind_TASK_KIND_KEY_SHARES:
		return "key shares"
	case pb.TaskKind_TASK_KIND_TRAIN:
		return "training"
	case pb.TaskKind_TASK_KIND_DECRYPT:
		return "decryption"
	}
	return k.String()
}

// taskNonceKey distinguishes decryption attempts: shares computed for an
// earlier active set must not be accepted for a later one.
func taskNonceKey(kind round.Kind, r, attempt int, site string) string {
	if kind == round.KindDecryption {
		return fmt.Sprintf("%s/%d.%d/%s", kind, r, attempt, site)
	}
	return nonceKey(kind, r, site)
}

func (c *Coordinator) buildTaskLocked(j *job, a round.Action) (*pb.Task, error) {
	key := taskNonceKey(a.Kind, a.Round, a.Attempt, a.Site)
	nonceHex, ok := j.rec.Nonces[key]
	if !ok {
		var err error
		if nonceHex, err = newNonce(); err != nil {
			return nil, err
		}
		j.rec.Nonces[key] = nonceHex
	}
	if j.rec.Sites == nil {
		j.rec.Sites = map[string]bool{}
	}
	j.rec.Sites[a.Site] = true
	nonce, _ := hex.DecodeString(nonceHex)
	t := &pb.Task{
		TaskId:      j.rec.ID + "/" + key,
		Kind:        kindToTask[a.Kind],
		JobId:       j.rec.ID,
		Round:       uint32(a.Round),
		Spec:        j.spec,
		Nonce:       nonce,
		InputParams: uint64(j.rec.Params),
		LayoutHash:  j.rec.LayoutHash,
	}
	if a.Kind == round.KindUpdate {
		t.InputBlob = modelBlob(j.rec.ID, a.Round-1)
		t.UpdateClip = j.roundClip()
	}
	if j.rec.Secure != nil {
		if err := c.secureTaskFields(j, a, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// newNonce is a task's nonce, hex: the upload or report answering the task
// must present it.
func newNonce() (string, error) {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(n[:]), nil
}
