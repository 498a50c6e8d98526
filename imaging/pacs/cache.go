package pacs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// cache is the folder of retrieved Part 10 files, bounded in bytes. Its
// index (which instance is cached, in which least-recently-used order, how
// many bytes in all) is in the bbolt database, updated in the transaction
// that records the instance, so a crash leaves at most a stray file, which
// open removes.
type cache struct {
	dir   string
	bound int64
	db    *bolt.DB
}

func openCache(db *bolt.DB, dir string, bound int64) (*cache, error) {
	if bound <= 0 {
		return nil, errors.New("pacs cache: give a size bound in bytes")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pacs cache: %w", err)
	}
	c := &cache{dir: dir, bound: bound, db: db}
	return c, c.reconcile()
}

// reconcile removes files the index does not list and un-caches entries
// whose file is gone; it re-counts the bytes and evicts down to the bound
// (which the hospital may have lowered since).
func (c *cache) reconcile() error {
	want := map[string]bool{}
	err := c.db.Update(func(tx *bolt.Tx) error {
		ins, lru := tx.Bucket(bInstances), tx.Bucket(bLRU)
		var total int64
		var drop [][]byte
		cur := lru.Cursor()
		for t, k := cur.First(); t != nil; t, k = cur.Next() {
			_, sop := splitKey(k)
			name := cacheName(sop)
			var rec instanceRec
			ok, err := getJSON(ins, k, &rec)
			if err != nil {
				return err
			}
			if st, err := os.Stat(filepath.Join(c.dir, name)); !ok || err != nil || st.Size() != rec.Size {
				drop = append(drop, append([]byte(nil), t...))
				continue
			}
			want[name] = true
			total += rec.Size
		}
		for _, t := range drop {
			if err := c.uncache(tx, t); err != nil {
				return err
			}
		}
		if err := putU64(tx.Bucket(bMeta), "bytes", uint64(total)); err != nil {
			return err
		}
		return c.evict(tx, 0, want)
	})
	if err != nil {
		return fmt.Errorf("pacs cache: %w", err)
	}
	// Only files of the cache's own naming are removed: cache_dir may have
	// been pointed at a folder that holds other things.
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("pacs cache: %w", err)
	}
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && !want[n] && (cacheFile.MatchString(n) || strings.HasPrefix(n, tmpPrefix)) {
			os.Remove(filepath.Join(c.dir, n))
		}
	}
	return nil
}

// cacheFile matches the names cacheName gives; tmpPrefix starts a file
// being written.
var cacheFile = regexp.MustCompile(`^[0-9a-f]{32}\.dcm$`)

const tmpPrefix = ".tmp-"

// uncache drops the LRU entry t and marks its instance not cached; the
// file is removed by the caller (after commit, or by reconcile).
func (c *cache) uncache(tx *bolt.Tx, t []byte) error {
	ins, lru := tx.Bucket(bInstances), tx.Bucket(bLRU)
	k := lru.Get(t)
	if err := lru.Delete(t); err != nil {
		return err
	}
	var rec instanceRec
	if ok, err := getJSON(ins, k, &rec); err != nil || !ok {
		return err
	}
	rec.Cached, rec.Tick = false, 0
	return putJSON(ins, k, rec)
}

// evict removes least-recently-used files until need more bytes fit under
// the bound. Evicted names are deleted from keep (when given).
func (c *cache) evict(tx *bolt.Tx, need int64, keep map[string]bool) error {
	meta, lru := tx.Bucket(bMeta), tx.Bucket(bLRU)
	used := int64(getU64(meta, "bytes"))
	for used+need > c.bound {
		t, k := lru.Cursor().First()
		if t == nil {
			break
		}
		var rec instanceRec
		if _, err := getJSON(tx.Bucket(bInstances), k, &rec); err != nil {
			return err
		}
		t = append([]byte(nil), t...)
		_, sop := splitKey(k)
		if err := c.uncache(tx, t); err != nil {
			return err
		}
		// Removed before the commit: a file the index still lists after a
		// crash is found missing by reconcile, never counted twice.
		if err := os.Remove(filepath.Join(c.dir, cacheName(sop))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if keep != nil {
			delete(keep, cacheName(sop))
		}
		used -= rec.Size
	}
	return putU64(meta, "bytes", uint64(max(used, 0)))
}

// put writes an instance into the cache, evicting as needed, and records
// it in tx; it returns the file written. An instance larger than the whole
// bound is recorded as fetched but not cached.
func (c *cache) put(tx *bolt.Tx, key []byte, rec *instanceRec, data []byte) (string, error) {
	var old instanceRec
	if ok, err := getJSON(tx.Bucket(bInstances), key, &old); err != nil {
		return "", err
	} else if ok && old.Cached {
		// Listed but its file was lost: drop the entry and its bytes first.
		if err := c.uncache(tx, tickKey(old.Tick)); err != nil {
			return "", err
		}
		meta := tx.Bucket(bMeta)
		if err := putU64(meta, "bytes", uint64(max(int64(getU64(meta, "bytes"))-old.Size, 0))); err != nil {
			return "", err
		}
	}
	rec.Size, rec.Cached, rec.Tick = int64(len(data)), false, 0
	if rec.Size > c.bound {
		return "", putJSON(tx.Bucket(bInstances), key, rec)
	}
	if err := c.evict(tx, rec.Size, nil); err != nil {
		return "", err
	}
	_, sop := splitKey(key)
	path := filepath.Join(c.dir, cacheName(sop))
	tmp, err := os.CreateTemp(c.dir, tmpPrefix+"*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return "", werr
	}
	meta := tx.Bucket(bMeta)
	if err := putU64(meta, "bytes", getU64(meta, "bytes")+uint64(rec.Size)); err != nil {
		return path, err
	}
	return path, c.touch(tx, key, rec)
}

// touch makes a cached instance the most recently used.
func (c *cache) touch(tx *bolt.Tx, key []byte, rec *instanceRec) error {
	meta, lru := tx.Bucket(bMeta), tx.Bucket(bLRU)
	if rec.Tick != 0 {
		if err := lru.Delete(tickKey(rec.Tick)); err != nil {
			return err
		}
	}
	tick := getU64(meta, "tick") + 1
	if err := putU64(meta, "tick", tick); err != nil {
		return err
	}
	rec.Cached, rec.Tick = true, tick
	if err := lru.Put(tickKey(tick), key); err != nil {
		return err
	}
	return putJSON(tx.Bucket(bInstances), key, rec)
}

func (c *cache) read(sop string) ([]byte, error) {
	return os.ReadFile(filepath.Join(c.dir, cacheName(sop)))
}

// used is the bytes the cache holds.
func (c *cache) used() (n int64, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		n = int64(getU64(tx.Bucket(bMeta), "bytes"))
		return nil
	})
	return n, err
}
