package coordinator

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// modelRecord is a published model version.
type modelRecord struct {
	Info []byte `json:"info"` // proto-encoded pb.ModelVersion
	Blob string `json:"blob"`
}

// publishLocked registers the job's final model as a new model version.
func (c *Coordinator) publishLocked(j *job) {
	if j.rec.ModelVersion != "" || len(j.rec.Rounds) == 0 {
		return
	}
	last := j.rec.Rounds[len(j.rec.Rounds)-1]
	info, err := c.st.blobInfo(last.Model)
	if err != nil {
		c.log.Error("publish model", "job", j.rec.ID, "err", err)
		return
	}
	err = c.saveJob(j, func(tx *bolt.Tx) error {
		n, err := nextSeq(tx, "model")
		if err != nil {
			return err
		}
		version := "v" + strconv.FormatUint(n, 10)
		mv := &pb.ModelVersion{Version: version, JobId: j.rec.ID, Round: uint32(last.Round), Params: uint64(j.rec.Params),
			LayoutHash: j.rec.LayoutHash, Sha256: info.SHA256, CreatedUnix: c.now().Unix(), Metrics: last.Metrics,
			Lineage: lineage(j)}
		data, err := proto.Marshal(mv)
		if err != nil {
			return err
		}
		j.rec.ModelVersion = version
		return putJSON(tx, bModels, modelKey(n), modelRecord{Info: data, Blob: last.Model})
	})
	if err != nil {
		j.rec.ModelVersion = ""
		c.log.Error("publish model", "job", j.rec.ID, "err", err)
		return
	}
	c.bus.emit(Event{Kind: EvJobCompleted, Actor: "coordinator", JobID: j.rec.ID, Round: last.Round,
		Detail: fmt.Sprintf("job completed after %d rounds", last.Round)})
	c.bus.emit(Event{Kind: EvModelPublished, Actor: "coordinator", JobID: j.rec.ID, Round: last.Round,
		Detail: fmt.Sprintf("model %s published (sha256 %s)", j.rec.ModelVersion, info.SHA256)})
}

// modelKey sorts versions numerically in the bucket.
func modelKey(n uint64) string { return fmt.Sprintf("%012d", n) }

// lineage records what produced a model: the job spec (pipeline included),
// the weight layout and the code version.
func lineage(j *job) string {
	return fmt.Sprintf("job=%s spec-sha256=%s layout=%s coordinator=%s", j.rec.ID, shortHash(j.rec.Spec), j.rec.LayoutHash, Version)
}
