package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SEGItem is one DICOM SEG waiting to be stored in the PACS, or parked.
type SEGItem struct {
	Seq            uint64    `json:"seq"`
	ResultID       string    `json:"result_id"`
	Path           string    `json:"path"`
	SOPInstanceUID string    `json:"sop_instance_uid"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error,omitempty"`
	Parked         time.Time `json:"parked,omitzero"`
}

func putSEGItem(tx *bolt.Tx, it SEGItem) error {
	q := tx.Bucket(bSEGQueue)
	seq, err := q.NextSequence()
	if err != nil {
		return err
	}
	it.Seq = seq
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return q.Put(seqKey(seq), v)
}

// ParkedSEGs lists the SEGs the PACS refused for good, oldest first.
func (s *Store) ParkedSEGs() ([]SEGItem, error) {
	var out []SEGItem
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSEGParked).ForEach(func(_, v []byte) error {
			var it SEGItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			out = append(out, it)
			return nil
		})
	})
	return out, err
}

func (s *Store) segHead() (it SEGItem, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bSEGQueue).Cursor().First()
		if k == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &it)
	})
	return it, ok, err
}

// segDone removes the head: stored, or (park) refused for good and kept
// in the parked bucket with its reason.
func (s *Store) segDone(it SEGItem, park bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bSEGQueue).Delete(seqKey(it.Seq)); err != nil {
			return err
		}
		if !park {
			return bump(tx, "seg_stored", 1)
		}
		v, err := json.Marshal(it)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bSEGParked).Put(seqKey(it.Seq), v); err != nil {
			return err
		}
		return bump(tx, "seg_parked", 1)
	})
}

func (s *Store) segAttempt(it SEGItem) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bSEGQueue).Put(seqKey(it.Seq), v) })
}

// segRefusal is a PACS answer that sending again will not change.
type segRefusal struct{ reason string }

func (r *segRefusal) Error() string { return r.reason }

// storeSEG sends one SEG by STOW-RS to the PACS and checks that the
// response dataset lists it as stored. Network errors, 5xx, 408 and 429
// are worth retrying; any other answer is a refusal.
func (s *Server) storeSEG(ctx context.Context, it SEGItem) error {
	b, err := os.ReadFile(it.Path)
	if err != nil {
		return &segRefusal{fmt.Sprintf("the SEG file cannot be read: %v", err)}
	}
	status, body, err := postSTOW(ctx, s.segHTTP, s.cfg.SEGStore+"/studies", b)
	switch {
	case err != nil:
		return err
	case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return fmt.Errorf("the PACS answered %d: %.200s", status, body)
	case status != http.StatusOK:
		return &segRefusal{fmt.Sprintf("the PACS answered %d: %.200s", status, body)}
	case !stowStored(body, it.SOPInstanceUID):
		return &segRefusal{fmt.Sprintf("the PACS's STOW-RS response does not list the SEG as stored: %.200s", body)}
	}
	return nil
}

// stowStored says whether a STOW-RS response dataset (DICOM JSON) lists
// the instance in its ReferencedSOPSequence and nothing in its
// FailedSOPSequence.
func stowStored(body []byte, uid string) bool {
	type attr struct {
		Value []json.RawMessage `json:"Value"`
	}
	var ds map[string]attr
	if err := json.Unmarshal(body, &ds); err != nil || len(ds["00081198"].Value) > 0 {
		return false
	}
	for _, raw := range ds["00081199"].Value {
		var item map[string]struct {
			Value []string `json:"Value"`
		}
		if json.Unmarshal(raw, &item) == nil && len(item["00081155"].Value) == 1 && item["00081155"].Value[0] == uid {
			return true
		}
	}
	return false
}

// segLoop stores the queued SEGs in the PACS in order (see drain): a
// segRefusal parks the SEG, which stays in the state folder. A SEG stored
// twice is the same SOP instance, which the PACS keeps once.
func (s *Server) segLoop(ctx context.Context) {
	drain(ctx, s, outbox[SEGItem]{
		what: "SEG store", wake: s.segWake, head: s.store.segHead, send: s.storeSEG,
		done: func(it SEGItem) error { return s.store.segDone(it, false) },
		refused: func(err error) bool {
			var r *segRefusal
			return errors.As(err, &r)
		},
		park: func(it SEGItem, err error) error {
			it.Attempts++
			it.LastError, it.Parked = err.Error(), time.Now().UTC()
			if err := s.store.segDone(it, true); err != nil {
				return err
			}
			s.log.Error("the PACS refused a DICOM SEG for good: parked; it stays in the state folder", "result", it.ResultID, "reason", it.LastError)
			return nil
		},
		retry: func(it SEGItem, err error) error {
			it.Attempts++
			it.LastError = err.Error()
			return s.store.segAttempt(it)
		},
		id: func(it SEGItem) string { return it.ResultID },
	})
}

func (s *Server) wakeSEG() {
	select {
	case s.segWake <- struct{}{}:
	default:
	}
}
