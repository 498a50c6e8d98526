package pacs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// IntakeConfig configures an Intake.
type IntakeConfig struct {
	Source Source
	// Queries select what the site trains on; a series any of them finds
	// is taken once.
	Queries []Query
	// DB is the agent's state database; the intake keeps its records in
	// buckets named pacs.*.
	DB *bolt.DB
	// CacheDir holds the retrieved Part 10 files, CacheBytes bounds them.
	CacheDir   string
	CacheBytes int64
	// Workers is how many series are retrieved at once (default 1); the
	// Source's own throttle bounds the requests in flight.
	Workers int
	// Progress, when set, is called after each instance is recorded.
	Progress func(fetched int)
}

// Intake brings the series the queries find into the site: incremental
// (only what the state does not record is retrieved) and resumable (each
// instance is recorded as it arrives, a series is marked done at its end).
type Intake struct {
	cfg   IntakeConfig
	cache *cache
	mu    sync.Mutex // serialises cache writes and the fetched counter
	n     int
}

// SyncReport is what one Sync did. Counts only: no UIDs.
type SyncReport struct {
	// Series found by the queries, and how many of them were already done.
	Series, AlreadyDone int
	// Fetched instances and their bytes; Skipped were recorded already.
	Fetched, Skipped int
	Bytes            int64
	// Broken counts instances that could not be used, by reason.
	Broken map[string]int
}

// NewIntake checks the config and reconciles the cache with the state.
func NewIntake(cfg IntakeConfig) (*Intake, error) {
	if cfg.Source == nil || cfg.DB == nil {
		return nil, errors.New("pacs intake: needs a source and a state database")
	}
	if len(cfg.Queries) == 0 {
		cfg.Queries = []Query{{}}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if err := initBuckets(cfg.DB); err != nil {
		return nil, fmt.Errorf("pacs intake state: %w", err)
	}
	c, err := openCache(cfg.DB, cfg.CacheDir, cfg.CacheBytes)
	if err != nil {
		return nil, err
	}
	return &Intake{cfg: cfg, cache: c}, nil
}

// CachedBytes is what the cache holds now.
func (in *Intake) CachedBytes() (int64, error) { return in.cache.used() }

// find runs every query and merges the series they find.
func (in *Intake) find(ctx context.Context) ([]Series, error) {
	seen := map[string]bool{}
	var out []Series
	for _, q := range in.cfg.Queries {
		ss, err := in.cfg.Source.FindSeries(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			if !seen[s.SeriesInstanceUID] {
				seen[s.SeriesInstanceUID] = true
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SeriesInstanceUID < out[j].SeriesInstanceUID })
	return out, nil
}

// Sync retrieves what the queries find and the state does not record. A
// broken instance is counted and skipped; an error from the PACS stops the
// sync (what arrived before it stays recorded).
func (in *Intake) Sync(ctx context.Context) (SyncReport, error) {
	rep := SyncReport{Broken: map[string]int{}}
	series, err := in.find(ctx)
	if err != nil {
		return rep, err
	}
	rep.Series = len(series)
	var todo []Series
	err = in.cfg.DB.View(func(tx *bolt.Tx) error {
		for _, s := range series {
			var rec seriesRec
			if _, err := getJSON(tx.Bucket(bSeries), []byte(s.SeriesInstanceUID), &rec); err != nil {
				return err
			}
			// A done series is taken again only if the PACS now says it
			// has more instances than it had (images added later).
			if rec.Done && (s.Instances < 0 || s.Instances <= rec.Instances) {
				rep.AlreadyDone++
				continue
			}
			todo = append(todo, s)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	var mu sync.Mutex
	jobs := make(chan Series)
	errs := make(chan error, in.cfg.Workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range in.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				r, err := in.syncSeries(ctx, s)
				mu.Lock()
				rep.Fetched += r.Fetched
				rep.Skipped += r.Skipped
				rep.Bytes += r.Bytes
				for k, v := range r.Broken {
					rep.Broken[k] += v
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, s := range todo {
		select {
		case jobs <- s:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return rep, err
	}
	return rep, ctx.Err()
}

// recorded is the SOP UIDs recorded for a series.
func (in *Intake) recorded(s Series) (map[string]bool, error) {
	have := map[string]bool{}
	err := in.cfg.DB.View(func(tx *bolt.Tx) error {
		prefix := instanceKey(s.SeriesInstanceUID, "")
		c := tx.Bucket(bInstances).Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			_, sop := splitKey(k)
			have[sop] = true
		}
		return nil
	})
	return have, err
}

// Instances are recorded in batches: one bbolt transaction (one fsync)
// per instance would cost more than the transfer. A batch is committed
// when it reaches either bound, at the end of a series, and when the
// retrieval stops for any reason; only a crash loses the batch under way
// (its instances are retrieved again at the next start).
const (
	batchInstances = 32
	batchBytes     = 64 << 20
)

type pending struct {
	sop  string
	data []byte
}

// syncSeries retrieves one series' missing instances, then marks it done.
func (in *Intake) syncSeries(ctx context.Context, s Series) (SyncReport, error) {
	rep := SyncReport{Broken: map[string]int{}}
	have, err := in.recorded(s)
	if err != nil {
		return rep, err
	}
	var batch []pending
	var batchSize int
	flush := func(done bool) error {
		if err := in.record(s, batch, done, len(have)); err != nil {
			return err
		}
		for _, p := range batch {
			rep.Fetched++
			rep.Bytes += int64(len(p.data))
		}
		batch, batchSize = nil, 0
		return nil
	}
	store := func(sop string, data []byte) error {
		if sop == "" {
			rep.Broken["no SOP Instance UID"]++
			return nil
		}
		if have[sop] {
			rep.Skipped++
			return nil
		}
		have[sop] = true
		batch = append(batch, pending{sop, data})
		batchSize += len(data)
		if len(batch) >= batchInstances || batchSize >= batchBytes {
			return flush(false)
		}
		return nil
	}
	lister, canList := in.cfg.Source.(Lister)
	picker, canPick := in.cfg.Source.(InstanceRetriever)
	if len(have) > 0 && canList && canPick {
		// Resumed or grown: fetch only what is missing.
		var all []Instance
		all, err = lister.ListInstances(ctx, s)
		if err == nil {
			var missing []string
			for _, i := range all {
				if !have[i.SOPInstanceUID] {
					missing = append(missing, i.SOPInstanceUID)
				}
			}
			err = picker.RetrieveInstances(ctx, s, missing, store)
		}
	} else {
		err = in.cfg.Source.Retrieve(ctx, s, store)
	}
	// What arrived is kept whether or not the retrieval finished.
	if ferr := flush(err == nil); err == nil {
		err = ferr
	}
	return rep, err
}

// record caches a batch of a series' instances and records them in one
// transaction; with done, it marks the series done (n instances).
func (in *Intake) record(s Series, batch []pending, done bool, n int) error {
	if len(batch) == 0 && !done {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	var written []string
	err := in.cfg.DB.Update(func(tx *bolt.Tx) error {
		for _, p := range batch {
			rec := instanceRec{Study: s.StudyInstanceUID}
			path, err := in.cache.put(tx, instanceKey(s.SeriesInstanceUID, p.sop), &rec, p.data)
			if path != "" {
				written = append(written, path)
			}
			if err != nil {
				return err
			}
		}
		// The series is recorded with its first instances, so a restart
		// knows it was begun, and marked done at its end.
		rec := seriesRec{Study: s.StudyInstanceUID, Modality: s.Modality, BodyPart: s.BodyPart}
		if done {
			rec.Instances, rec.Done = max(s.Instances, n), true
		} else if tx.Bucket(bSeries).Get([]byte(s.SeriesInstanceUID)) != nil {
			return nil
		}
		return putJSON(tx.Bucket(bSeries), []byte(s.SeriesInstanceUID), rec)
	})
	if err != nil {
		// Files the index will not list would count against no bound.
		for _, p := range written {
			os.Remove(p)
		}
		return fmt.Errorf("pacs intake: record instances: %w", err)
	}
	if in.cfg.Progress != nil {
		for range batch {
			in.n++
			in.cfg.Progress(in.n)
		}
	}
	return nil
}
