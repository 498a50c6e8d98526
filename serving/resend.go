package serving

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrNotParked is returned by Resend for a result id that no parked item has.
var ErrNotParked = errors.New("no parked result with that id")

// Resent is one parked item Resend moved back to its queue.
type Resent struct {
	ResultID string `json:"result_id"`
	// What is "fhir" (the result's FHIR bundle) or "seg" (its DICOM SEG,
	// for the PACS).
	What string `json:"what"`
}

// parkedQueues pairs each parked bucket with the queue its items go back to.
var parkedQueues = []struct {
	what           string
	parked, queued []byte
}{{"fhir", bParked, bQueue}, {"seg", bSEGParked, bSEGQueue}}

// Resend moves parked items (FHIR results the endpoint refused, SEGs the
// PACS refused) back to the end of their queues with their attempts reset:
// what an operator does after fixing the cause that `site-agent models
// list` shows. With resultID "" every parked item is moved; otherwise
// those of that result (ErrNotParked when it has none). The bundles and
// SEGs are the ones made when the study was served; conditional creates
// and the SEG's fixed SOP Instance UID make sending one again harmless.
func (s *Store) Resend(resultID string) ([]Resent, error) {
	var moved []Resent
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, pq := range parkedQueues {
			p, q := tx.Bucket(pq.parked), tx.Bucket(pq.queued)
			var keys [][]byte
			var items []map[string]any
			err := p.ForEach(func(k, v []byte) error {
				var it map[string]any
				if err := json.Unmarshal(v, &it); err != nil {
					return fmt.Errorf("parked item %x: %w", k, err)
				}
				if resultID == "" || it["result_id"] == resultID {
					keys = append(keys, append([]byte(nil), k...))
					items = append(items, it)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for i, it := range items {
				seq, err := q.NextSequence()
				if err != nil {
					return err
				}
				// Item and SEGItem share these fields; a generic map keeps
				// every other field as it was.
				it["seq"], it["attempts"] = seq, 0
				delete(it, "last_error")
				delete(it, "parked")
				v, err := json.Marshal(it)
				if err != nil {
					return err
				}
				if err := q.Put(seqKey(seq), v); err != nil {
					return err
				}
				if err := p.Delete(keys[i]); err != nil {
					return err
				}
				id, _ := it["result_id"].(string)
				moved = append(moved, Resent{ResultID: id, What: pq.what})
			}
		}
		if len(moved) == 0 && resultID != "" {
			return fmt.Errorf("%w (%.64s): `site-agent models list` shows the parked ones", ErrNotParked, resultID)
		}
		return bump(tx, "resent", uint64(len(moved)))
	})
	if err != nil {
		return nil, err
	}
	return moved, nil
}
