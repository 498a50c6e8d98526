package pacs

import (
	"context"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Fetched is one instance the intake recorded.
type Fetched struct {
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID string
}

// Count is the number of instances recorded.
func (in *Intake) Count() (n int, err error) {
	err = in.cfg.DB.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bInstances).Stats().KeyN
		return nil
	})
	return n, err
}

// Each calls fn with every recorded instance and its Part 10 bytes, in
// UID order within two passes: first what the cache holds, then what it
// evicted, retrieved again (and cached again, evicting what the first pass
// has read). It returns how many were retrieved again.
func (in *Intake) Each(ctx context.Context, fn func(f Fetched, part10 []byte) error) (refetched int, err error) {
	type entry struct {
		f   Fetched
		key []byte
	}
	var cached, evicted []entry
	err = in.cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bInstances).ForEach(func(k, v []byte) error {
			var rec instanceRec
			if _, err := getJSON(tx.Bucket(bInstances), k, &rec); err != nil {
				return err
			}
			series, sop := splitKey(k)
			e := entry{Fetched{rec.Study, series, sop}, append([]byte(nil), k...)}
			if rec.Cached {
				cached = append(cached, e)
			} else {
				evicted = append(evicted, e)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("pacs intake state: %w", err)
	}
	var read [][]byte
	for _, e := range cached {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b, err := in.cache.read(e.f.SOPInstanceUID)
		if err != nil {
			evicted = append(evicted, e) // gone behind the index's back
			continue
		}
		if err := fn(e.f, b); err != nil {
			return 0, err
		}
		read = append(read, e.key)
	}
	if err := in.touch(read); err != nil {
		return 0, err
	}
	bySeries := map[string][]entry{}
	var order []string
	for _, e := range evicted {
		if bySeries[e.f.SeriesInstanceUID] == nil {
			order = append(order, e.f.SeriesInstanceUID)
		}
		bySeries[e.f.SeriesInstanceUID] = append(bySeries[e.f.SeriesInstanceUID], e)
	}
	for _, su := range order {
		es := bySeries[su]
		want := map[string]Fetched{}
		uids := make([]string, len(es))
		for i, e := range es {
			want[e.f.SOPInstanceUID] = e.f
			uids[i] = e.f.SOPInstanceUID
		}
		s := Series{StudyInstanceUID: es[0].f.StudyInstanceUID, SeriesInstanceUID: su, Instances: -1}
		store := func(sop string, data []byte) error {
			f, ok := want[sop]
			if !ok {
				return nil
			}
			delete(want, sop)
			if err := in.recache(s, sop, data); err != nil {
				return err
			}
			refetched++
			return fn(f, data)
		}
		if p, ok := in.cfg.Source.(InstanceRetriever); ok {
			err = p.RetrieveInstances(ctx, s, uids, store)
		} else {
			err = in.cfg.Source.Retrieve(ctx, s, store)
		}
		if err != nil {
			return refetched, err
		}
	}
	return refetched, nil
}

// recache puts an evicted instance back into the cache.
func (in *Intake) recache(s Series, sop string, data []byte) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var written string
	err := in.cfg.DB.Update(func(tx *bolt.Tx) error {
		rec := instanceRec{Study: s.StudyInstanceUID}
		var err error
		written, err = in.cache.put(tx, instanceKey(s.SeriesInstanceUID, sop), &rec, data)
		return err
	})
	if err != nil && written != "" {
		os.Remove(written)
	}
	return err
}

// touch marks instances as just used, in one transaction.
func (in *Intake) touch(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg.DB.Update(func(tx *bolt.Tx) error {
		for _, k := range keys {
			var rec instanceRec
			ok, err := getJSON(tx.Bucket(bInstances), k, &rec)
			if err != nil {
				return err
			}
			if ok && rec.Cached {
				if err := in.cache.touch(tx, k, &rec); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
