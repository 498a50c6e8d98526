package siteagent

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The drift baseline and the last report live in the agent's state: the
// baseline because the data it describes may be gone by the next check
// (a job's cache, a rotated data folder), the report so that `site-agent
// drift` shows what was last sent.

var (
	bDrift         = []byte("drift")
	kDriftBaseline = []byte("baseline")
	kDriftReport   = []byte("report")
	kDriftModel    = []byte("model")
)

// putBaseline records a baseline and, in the same transaction, the model
// its prediction histogram was computed with (nil: none, and a previous
// baseline's model is dropped with it).
func (s *state) putBaseline(b *Baseline, dm *driftModel) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	var model []byte
	if dm != nil {
		if model, err = json.Marshal(dm); err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bDrift)
		if err != nil {
			return err
		}
		if model == nil {
			if err := bk.Delete(kDriftModel); err != nil {
				return err
			}
		} else if err := bk.Put(kDriftModel, model); err != nil {
			return err
		}
		return bk.Put(kDriftBaseline, data)
	})
}

// driftModel returns the model kept with the baseline, nil when none is.
func (s *state) driftModel() (*driftModel, error) {
	var out *driftModel
	err := s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bDrift)
		if bk == nil {
			return nil
		}
		v := bk.Get(kDriftModel)
		if v == nil {
			return nil
		}
		out = &driftModel{}
		return json.Unmarshal(v, out)
	})
	return out, err
}

func (s *state) putDriftReport(r *pb.DriftReport) error {
	data, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	return s.putDrift(kDriftReport, data)
}

func (s *state) putDrift(key, data []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bDrift)
		if err != nil {
			return err
		}
		return b.Put(key, data)
	})
}

// baseline returns the recorded baseline, nil when none is.
func (s *state) baseline() (*Baseline, error) {
	var out *Baseline
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, _, err = readDrift(tx)
		return err
	})
	return out, err
}

func readDrift(tx *bolt.Tx) (*Baseline, *pb.DriftReport, error) {
	bk := tx.Bucket(bDrift)
	if bk == nil {
		return nil, nil, nil
	}
	var b *Baseline
	if v := bk.Get(kDriftBaseline); v != nil {
		b = &Baseline{}
		if err := json.Unmarshal(v, b); err != nil {
			return nil, nil, fmt.Errorf("drift baseline in the agent state: %w", err)
		}
	}
	var r *pb.DriftReport
	if v := bk.Get(kDriftReport); v != nil {
		r = &pb.DriftReport{}
		if err := proto.Unmarshal(v, r); err != nil {
			return nil, nil, fmt.Errorf("drift report in the agent state: %w", err)
		}
	}
	return b, r, nil
}

// DriftState is what `site-agent drift` shows: the baseline and the last
// report sent (each nil when there is none yet).
type DriftState struct {
	Baseline *Baseline
	Last     *pb.DriftReport
}

// ReadDrift reads the drift baseline and last report from an agent's state
// folder, read-only (a running agent holds the database: ErrStateLocked).
func ReadDrift(stateDir string, timeout time.Duration) (DriftState, error) {
	db, err := openStateReadOnly(stateDir, timeout)
	if err != nil {
		return DriftState{}, err
	}
	defer db.Close()
	var out DriftState
	err = db.View(func(tx *bolt.Tx) error {
		var err error
		out.Baseline, out.Last, err = readDrift(tx)
		return err
	})
	return out, err
}
