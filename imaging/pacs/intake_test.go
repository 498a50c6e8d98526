package pacs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testorthanc"
	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// dirBytes is what the files in dir hold.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestIntakeResumesWithoutFetchingTwice stops an intake after a few
// instances, restarts it on the same state, and checks that the restart
// retrieves exactly what the first run had not recorded.
func TestIntakeResumesWithoutFetchingTwice(t *testing.T) {
	c := loadCorpus(t)
	px := newProxy(t, c.orthanc.URL)
	src := openDICOMweb(t, px.URL+"/dicom-web", Options{})
	dir := t.TempDir()
	dbPath, cacheDir := filepath.Join(dir, "state.db"), filepath.Join(dir, "cache")

	// First run: cancelled from inside after 5 instances are recorded.
	db := openDB(t, dbPath)
	ctx, cancel := context.WithCancel(context.Background())
	in, err := NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: cacheDir, CacheBytes: 1 << 30, Workers: 2,
		Progress: func(n int) {
			if n == 5 {
				cancel()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := in.Sync(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted sync: %v", err)
	}
	first, _ := in.Count()
	if first < 5 || first >= len(c.bySOP) {
		t.Fatalf("the interrupted run recorded %d of %d", first, len(c.bySOP))
	}
	recorded := map[string]bool{}
	begun := map[string]bool{}
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bInstances).ForEach(func(k, _ []byte) error {
			se, sop := splitKey(k)
			recorded[sop], begun[se] = true, true
			return nil
		})
	})
	db.Close()
	px.requests()

	// Restart on the same state.
	db = openDB(t, dbPath)
	defer db.Close()
	in, err = NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: cacheDir, CacheBytes: 1 << 30, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = in.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fetched+first != len(c.bySOP) || rep.Skipped != 0 {
		t.Errorf("restart fetched %d and skipped %d after %d; the PACS holds %d", rep.Fetched, rep.Skipped, first, len(c.bySOP))
	}
	series, instances := retrievals(px.requests())
	for _, s := range series {
		if begun[s] {
			t.Errorf("the restart retrieved again a whole series the first run had begun")
		}
	}
	for _, sop := range instances {
		if recorded[sop] {
			t.Errorf("the restart retrieved again an instance the first run had recorded")
		}
	}
	// A third run finds everything done and retrieves nothing.
	rep, err = in.Sync(context.Background())
	if err != nil || rep.Fetched != 0 || rep.AlreadyDone != len(corpusFiles) {
		t.Errorf("third run: %+v, %v", rep, err)
	}
	if s, i := retrievals(px.requests()); len(s)+len(i) != 0 {
		t.Errorf("third run retrieved %d series and %d instances", len(s), len(i))
	}
	// What the intake serves is what was uploaded.
	n := 0
	if _, err := in.Each(context.Background(), func(f Fetched, b []byte) error {
		n++
		if !bytes.Equal(b, c.bySOP[f.SOPInstanceUID]) {
			t.Errorf("instance %d differs from the upload", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(c.bySOP) {
		t.Errorf("Each gave %d instances, want %d", n, len(c.bySOP))
	}
}

// TestIntakeCacheStaysWithinItsBound fetches a corpus three times the
// cache's size: the cache never holds more than the bound, and what it
// evicted is retrieved again, byte-identical, when the data is read.
func TestIntakeCacheStaysWithinItsBound(t *testing.T) {
	c := loadCorpus(t)
	px := newProxy(t, c.orthanc.URL)
	src := openDICOMweb(t, px.URL+"/dicom-web", Options{})
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "state.db"))
	defer db.Close()
	bound := c.bytes / 3
	cacheDir := filepath.Join(dir, "cache")
	var over []int64
	in, err := NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: cacheDir, CacheBytes: bound,
		Progress: func(int) {
			if n := dirBytes(t, cacheDir); n > bound {
				over = append(over, n)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := in.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fetched != len(c.bySOP) || rep.Bytes != c.bytes {
		t.Errorf("fetched %d instances, %d bytes; want %d, %d", rep.Fetched, rep.Bytes, len(c.bySOP), c.bytes)
	}
	if len(over) > 0 {
		t.Errorf("the cache went over its bound %d: %v", bound, over)
	}
	used, _ := in.CachedBytes()
	if used > bound || used != dirBytes(t, cacheDir) || used == 0 {
		t.Errorf("cache accounts %d bytes, folder holds %d, bound %d", used, dirBytes(t, cacheDir), bound)
	}
	ents, _ := os.ReadDir(cacheDir)
	for _, e := range ents {
		for sop := range c.bySOP {
			if strings.Contains(e.Name(), sop) {
				t.Errorf("cache file %s is named by a UID", e.Name())
			}
		}
	}
	px.requests()
	var got []string
	refetched, err := in.Each(context.Background(), func(f Fetched, b []byte) error {
		if !bytes.Equal(b, c.bySOP[f.SOPInstanceUID]) {
			t.Errorf("instance differs from the upload")
		}
		got = append(got, f.SOPInstanceUID)
		if n := dirBytes(t, cacheDir); n > bound {
			over = append(over, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if len(got) != len(c.bySOP) || len(slices.Compact(got)) != len(c.bySOP) {
		t.Errorf("Each gave %d instances (%d distinct), want %d", len(got), len(slices.Compact(got)), len(c.bySOP))
	}
	_, inst := retrievals(px.requests())
	if refetched == 0 || refetched != len(inst) {
		t.Errorf("%d instances retrieved again in %d requests; the cache holds a third", refetched, len(inst))
	}
	if len(over) > 0 {
		t.Errorf("the cache went over its bound %d while read: %v", bound, over)
	}

	// A hospital that lowers the bound gets it at the next start. A file
	// of the cache's naming that the state does not list (left by a crash)
	// is removed; anything else in the folder is left alone.
	stray := filepath.Join(cacheDir, cacheName("2.25.999"))
	foreign := filepath.Join(cacheDir, "notes.txt")
	os.WriteFile(stray, []byte("stray"), 0o600)
	os.WriteFile(foreign, []byte("not ours"), 0o600)
	_, err = NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: cacheDir, CacheBytes: bound / 4})
	if err != nil {
		t.Fatal(err)
	}
	if n := dirBytes(t, cacheDir) - int64(len("not ours")); n > bound/4 {
		t.Errorf("after lowering the bound to %d the cache holds %d", bound/4, n)
	}
	if _, err := os.Stat(stray); err == nil {
		t.Error("a stray cache file survived the start")
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a file that is not the cache's was removed: %v", err)
	}
}

// TestIntakeHonoursConcurrency runs four workers against a source that
// allows two requests in flight, and counts what reached the PACS.
func TestIntakeHonoursConcurrency(t *testing.T) {
	c := loadCorpus(t)
	px := newProxy(t, c.orthanc.URL)
	src := openDICOMweb(t, px.URL+"/dicom-web", Options{Concurrency: 2})
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	defer db.Close()
	in, err := NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: t.TempDir(), CacheBytes: 1 << 30, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := px.maxIn.Load(); m > 2 {
		t.Errorf("%d requests in flight at once, allowed 2", m)
	}
	// One study query, one series query per study, one retrieval per
	// series: nothing more.
	paths := px.requests()
	series, instances := retrievals(paths)
	if len(paths) != 1+2*len(corpusFiles) || len(series) != len(corpusFiles) || len(instances) != 0 {
		t.Errorf("%d requests (%d series retrievals, %d instance retrievals) for %d series", len(paths), len(series), len(instances), len(corpusFiles))
	}
}

// TestIntakeResumesInsideASeries interrupts the retrieval of one long
// series after its first batch is recorded: the restart lists the series
// and retrieves, one by one, only the instances it lacks.
//
// A Source without the optional abilities (Lister, InstanceRetriever)
// retrieves the series again and the intake skips what it has.
func TestIntakeResumesInsideASeries(t *testing.T) {
	o := testorthanc.Start(t, testorthanc.Options{})
	const n = 80
	want := syntheticSeries(t, o, n, 32)
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			px := newProxy(t, o.URL)
			var src Source = openDICOMweb(t, px.URL+"/dicom-web", Options{})
			if plain {
				src = struct{ Source }{src}
			}
			resumeInsideSeries(t, px, src, n, want, plain)
		})
	}
}

func resumeInsideSeries(t *testing.T, px *proxy, src Source, n int, want map[string][]byte, plain bool) {
	dir := t.TempDir()
	dbPath, cacheDir := filepath.Join(dir, "state.db"), filepath.Join(dir, "cache")

	db := openDB(t, dbPath)
	ctx, cancel := context.WithCancel(context.Background())
	in, err := NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: cacheDir, CacheBytes: 1 << 30,
		Progress: func(k int) {
			if k == batchInstances {
				cancel()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted sync: %v", err)
	}
	first, _ := in.Count()
	if first < batchInstances || first >= n {
		t.Fatalf("the interrupted run recorded %d of %d", first, n)
	}
	recorded := map[string]bool{}
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bInstances).ForEach(func(k, _ []byte) error {
			_, sop := splitKey(k)
			recorded[sop] = true
			return nil
		})
	})
	db.Close()
	px.requests()

	db = openDB(t, dbPath)
	defer db.Close()
	got := 0
	in, err = NewIntake(IntakeConfig{Source: src, DB: db, CacheDir: cacheDir, CacheBytes: 1 << 30, Progress: func(int) { got++ }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := in.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	series, instances := retrievals(px.requests())
	wantSeries, wantInstances, wantSkipped := 0, n-first, 0
	if plain {
		wantSeries, wantInstances, wantSkipped = 1, 0, first
	}
	if len(series) != wantSeries || len(instances) != wantInstances || rep.Fetched != n-first || rep.Skipped != wantSkipped || got != n-first {
		t.Errorf("restart after %d of %d: %d series and %d instance retrievals, fetched %d, skipped %d", first, n, len(series), len(instances), rep.Fetched, rep.Skipped)
	}
	for _, sop := range instances {
		if recorded[sop] {
			t.Errorf("the restart retrieved again an instance the first run had recorded")
		}
	}
	seen := 0
	if _, err := in.Each(context.Background(), func(f Fetched, b []byte) error {
		seen++
		if !bytes.Equal(b, want[f.SOPInstanceUID]) {
			t.Errorf("instance %d differs from the upload", seen)
		}
		return nil
	}); err != nil || seen != n {
		t.Errorf("Each: %d instances, %v", seen, err)
	}
}
