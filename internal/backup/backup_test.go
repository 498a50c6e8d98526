package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func put(db *bolt.DB, k, v string) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("things"))
		if err != nil {
			return err
		}
		return b.Put([]byte(k), []byte(v))
	})
}

// TestTakeWhileWritingThenInstall: a snapshot taken while another
// goroutine writes is a consistent database; Install checks it, refuses a
// database in use, keeps the one it replaces, and leaves nothing behind
// when the check fails.
func TestTakeWhileWritingThenInstall(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "live.db"))
	defer db.Close()
	for i := range 100 {
		if err := put(db, fmt.Sprintf("k%03d", i), "before"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			_ = put(db, fmt.Sprintf("w%03d", i), strings.Repeat("x", 4096))
		}
	}()
	snap, err := Take(db, dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "backup.db")
	n, sum, err := WriteFile(file, snap)
	wg.Wait()
	if err != nil || n != snap.Size || sum != snap.SHA256 {
		t.Fatalf("write: %d/%d bytes, sha %s/%s, %v", n, snap.Size, sum, snap.SHA256, err)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".backup-*")); len(left) != 0 {
		t.Errorf("temporary snapshots left: %v", left)
	}
	hasThings := func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			if err := RequireBuckets(tx, "things"); err != nil {
				return err
			}
			if n := tx.Bucket([]byte("things")).Stats().KeyN; n < 100 {
				return fmt.Errorf("%d keys", n)
			}
			return nil
		})
	}
	if err := Verify(file, hasThings); err != nil {
		t.Fatal(err)
	}
	wantMissing := func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error { return RequireBuckets(tx, "other") })
	}
	if err := Verify(file, wantMissing); err == nil || !strings.Contains(err.Error(), `no "other" bucket`) {
		t.Errorf("missing bucket: %v", err)
	}

	dst := filepath.Join(t.TempDir(), "state", "agent.db")
	if kept, err := Install(file, dst, hasThings); err != nil || kept != "" {
		t.Fatalf("install into an empty folder: %q %v", kept, err)
	}
	held := openDB(t, dst)
	if _, err := Install(file, dst, hasThings); !errors.Is(err, ErrInUse) {
		t.Errorf("install over a database in use: %v", err)
	}
	held.Close()
	kept, err := Install(file, dst, hasThings)
	if err != nil || !strings.Contains(kept, ".before-restore-") {
		t.Fatalf("install over a stopped database: %q %v", kept, err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("the replaced database is not kept: %v", err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not bbolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(garbage, dst, hasThings); err == nil || !strings.Contains(err.Error(), "not a readable database") {
		t.Errorf("install of garbage: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".agent.db.restore-*")); len(left) != 0 {
		t.Errorf("temporary copies left: %v", left)
	}
}
