package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNotParked is returned by Resend for a result id that no parked item has.
var ErrNotParked = errors.New("no parked result with that id")

// Resend moves parked results back to the end of the delivery queue, with
// their attempts reset: what an operator does after fixing the cause the
// endpoint gave (a profile, a missing code system, a permission). With
// resultID "" every parked result is moved; otherwise the items of that
// result (ErrNotParked when it has none). It returns the ids moved, oldest
// first. The bundles are the ones built when the study was served; their
// conditional creates make a resend after a partial delivery safe.
func (s *Store) Resend(resultID string) ([]string, error) {
	var moved []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		p, q := tx.Bucket(bParked), tx.Bucket(bQueue)
		var keys [][]byte
		var items []Item
		err := p.ForEach(func(k, v []byte) error {
			var it Item
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("parked item %x: %w", k, err)
			}
			if resultID == "" || it.ResultID == resultID {
				keys = append(keys, append([]byte(nil), k...))
				items = append(items, it)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(items) == 0 && resultID != "" {
			return fmt.Errorf("%w (%.64s): `site-agent models list` shows the parked ones", ErrNotParked, resultID)
		}
		for i, it := range items {
			seq, err := q.NextSequence()
			if err != nil {
				return err
			}
			it.Seq, it.Attempts, it.LastError, it.Parked = seq, 0, "", time.Time{}
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
			moved = append(moved, it.ResultID)
		}
		return bump(tx, "resent", uint64(len(items)))
	})
	if err != nil {
		return nil, err
	}
	return moved, nil
}
