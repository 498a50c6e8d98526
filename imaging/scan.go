package imaging

import (
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// ScanOptions configure Scan.
type ScanOptions struct {
	// CachePath, if set, is a header cache: files whose size and modification time are
	// unchanged since the last scan are not read again. It holds the files' paths
	// (which may name patients) and pseudonymous keys, and is written with mode 0600.
	CachePath string
	// Progress, if set, is called from one goroutine as files complete.
	Progress func(done, total int)
	// Workers reading files in parallel; 0 means GOMAXPROCS.
	Workers int
	// Decode makes Scan decode every frame, not only check the header and sizes.
	Decode bool
	// Deid, if set, keys series and studies by their de-identified UIDs; otherwise by
	// a SHA-256 of the UID. Either way no raw UID is kept.
	Deid *Deidentifier
	// AllowBurnedIn counts burned-in images as usable (the site opted in).
	AllowBurnedIn bool
}

// ScanSummary is what a scan found: counts and pseudonymous keys, and the
// rejected files by their path relative to the scanned folder. Those paths
// are for the operator who must find the files; the summary is printed on
// the hospital's own machine and never goes to a log line or an event.
type ScanSummary struct {
	Files int `json:"files"`
	// Usable counts files that passed every check: header, sizes, transfer
	// syntax, and with Decode the pixel data too.
	Usable int `json:"usable"`
	// Decoded counts files whose pixels were decoded, which only Decode
	// does (now or in the cached scan of an unchanged file).
	Decoded   int `json:"decoded"`
	CacheHits int `json:"cache_hits"`
	// Rejected counts files that cannot be used, by reason.
	Rejected map[string]int `json:"rejected"`
	// RejectedFiles lists them, sorted by path.
	RejectedFiles []RejectedFile `json:"rejected_files"`
	// Classes counts the files under each first-level subfolder of the
	// scanned folder (the class folders of a training set); files directly
	// in it are in no class.
	Classes          map[string]ClassCount `json:"classes"`
	Modalities       map[string]int        `json:"modalities"`
	TransferSyntaxes map[string]int        `json:"transfer_syntaxes"`
	Series           int                   `json:"series"`
	Studies          int                   `json:"studies"`
	SeriesList       []SeriesSummary       `json:"series_list,omitempty"`
}

// RejectedFile is one file a scan could not use.
type RejectedFile struct {
	Path   string `json:"path"`   // relative to the scanned folder, with forward slashes
	Reason string `json:"reason"` // as in ScanSummary.Rejected
}

// ClassCount is what a scan found in one class folder.
type ClassCount struct {
	Files    int `json:"files"`
	Usable   int `json:"usable"`
	Decoded  int `json:"decoded"`
	Rejected int `json:"rejected"`
}

// SeriesSummary is one series: de-identified keys, its modality and image count.
type SeriesSummary struct {
	Study    string `json:"study"`
	Series   string `json:"series"`
	Modality string `json:"modality"`
	Images   int    `json:"images"`
}

// scanEntry is one cached file result.
type scanEntry struct {
	Size     int64
	ModNanos int64
	Reason   string // "" when usable
	Modality string
	TS       string
	Study    string
	Series   string
	Decoded  bool // Decode was on when this entry was made
}

// scanCacheVersion changes whenever what the reader can decode changes, so that a
// cached "unsupported" verdict does not outlive the reader that gave it (2: JPEG 2000).
const scanCacheVersion = 2

type scanCache struct {
	Version int
	Entries map[string]scanEntry
}

func loadScanCache(path string) map[string]scanEntry {
	f, err := os.Open(path)
	if err != nil {
		return map[string]scanEntry{}
	}
	defer f.Close()
	var c scanCache
	if err := gob.NewDecoder(f).Decode(&c); err != nil || c.Version != scanCacheVersion || c.Entries == nil {
		return map[string]scanEntry{}
	}
	return c.Entries
}

func saveScanCache(path string, entries map[string]scanEntry) error {
	// The cache is keyed by file path, which can name a patient: only its
	// owner may read it.
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save scan cache: %w", err)
	}
	if err := gob.NewEncoder(f).Encode(scanCache{Version: scanCacheVersion, Entries: entries}); err != nil {
		f.Close()
		return fmt.Errorf("save scan cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save scan cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save scan cache: %w", err)
	}
	return nil
}

// Scan indexes every regular file under dir. Broken files are counted by reason and
// never stop the scan. It returns ctx.Err() if cancelled (the cache is still saved).
func Scan(ctx context.Context, dir string, opt ScanOptions) (ScanSummary, error) {
	sum := ScanSummary{Rejected: map[string]int{}, Classes: map[string]ClassCount{}, RejectedFiles: []RejectedFile{},
		Modalities: map[string]int{}, TransferSyntaxes: map[string]int{}}
	rel := func(path string) string {
		r, err := filepath.Rel(dir, path)
		if err != nil {
			return filepath.Base(path)
		}
		return filepath.ToSlash(r)
	}
	// count adds one file's outcome to its class folder, if it has one.
	count := func(path, reason string, decoded bool) {
		r := rel(path)
		class, _, nested := strings.Cut(r, "/")
		if !nested {
			return
		}
		c := sum.Classes[class]
		c.Files++
		switch {
		case reason != "":
			c.Rejected++
		default:
			c.Usable++
			if decoded {
				c.Decoded++
			}
		}
		sum.Classes[class] = c
	}
	reject := func(path, reason string) {
		sum.Rejected[reason]++
		sum.RejectedFiles = append(sum.RejectedFiles, RejectedFile{Path: rel(path), Reason: reason})
		count(path, reason, false)
	}
	type job struct {
		path string
		size int64
		mod  int64
	}
	var jobs []job
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			reject(path, "unreadable")
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			reject(path, "unreadable")
			return nil
		}
		if opt.CachePath != "" && sameFileName(path, opt.CachePath) {
			return nil
		}
		jobs = append(jobs, job{path, info.Size(), info.ModTime().UnixNano()})
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("scan %s: %w", dir, err)
	}
	sum.Files = len(jobs) + sum.Rejected["unreadable"]
	cache := map[string]scanEntry{}
	if opt.CachePath != "" {
		cache = loadScanCache(opt.CachePath)
	}
	results := make([]scanEntry, len(jobs))
	reached := make([]bool, len(jobs))
	todo := make(chan int)
	done := make(chan int)
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range todo {
				j := jobs[i]
				results[i] = scanFile(j.path, opt)
				results[i].Size, results[i].ModNanos = j.size, j.mod
				reached[i] = true
				done <- i
			}
		}()
	}
	var pending []int
	for i, j := range jobs {
		if c, ok := cache[j.path]; ok && c.Size == j.size && c.ModNanos == j.mod && (c.Decoded || !opt.Decode) {
			results[i] = c
			reached[i] = true
			sum.CacheHits++
			continue
		}
		pending = append(pending, i)
	}
	go func() {
		defer close(todo)
		for _, i := range pending {
			select {
			case todo <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(done) }()
	completed := sum.CacheHits
	if opt.Progress != nil {
		opt.Progress(completed, len(jobs))
	}
	for range done {
		completed++
		if opt.Progress != nil {
			opt.Progress(completed, len(jobs))
		}
	}
	if opt.Progress != nil && completed != len(jobs) {
		opt.Progress(completed, len(jobs))
	}
	fresh := map[string]scanEntry{}
	series := map[[2]string]*SeriesSummary{}
	studies := map[string]bool{}
	for i, r := range results {
		if !reached[i] {
			continue // cancelled before this file
		}
		fresh[jobs[i].path] = r
		if r.Reason != "" {
			reject(jobs[i].path, r.Reason)
			continue
		}
		count(jobs[i].path, "", r.Decoded)
		sum.Usable++
		if r.Decoded {
			sum.Decoded++
		}
		sum.Modalities[r.Modality]++
		sum.TransferSyntaxes[r.TS]++
		k := [2]string{r.Study, r.Series}
		if s := series[k]; s != nil {
			s.Images++
		} else {
			series[k] = &SeriesSummary{Study: r.Study, Series: r.Series, Modality: r.Modality, Images: 1}
		}
		studies[r.Study] = true
	}
	sort.Slice(sum.RejectedFiles, func(i, j int) bool { return sum.RejectedFiles[i].Path < sum.RejectedFiles[j].Path })
	sum.Series, sum.Studies = len(series), len(studies)
	for _, s := range series {
		sum.SeriesList = append(sum.SeriesList, *s)
	}
	sort.Slice(sum.SeriesList, func(i, j int) bool {
		a, b := sum.SeriesList[i], sum.SeriesList[j]
		if a.Study != b.Study {
			return a.Study < b.Study
		}
		return a.Series < b.Series
	})
	if opt.CachePath != "" {
		if err := saveScanCache(opt.CachePath, fresh); err != nil {
			return sum, err
		}
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	return sum, nil
}

func sameFileName(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && (aa == bb || aa == bb+".tmp")
}

func scanFile(path string, opt ScanOptions) scanEntry {
	e := scanEntry{Decoded: opt.Decode}
	read := ReadHeader
	if opt.Decode {
		read = ReadFile
	}
	im, err := read(path)
	if err != nil {
		e.Reason = Reason(err)
		return e
	}
	e.Modality, e.TS = cleanCS(im.Modality), im.TransferSyntaxUID
	if e.Modality == "" {
		e.Modality = "UNKNOWN"
	}
	key := func(uid string) string {
		if opt.Deid != nil {
			return opt.Deid.UID(uid)
		}
		s := sha256.Sum256([]byte(uid))
		return hex.EncodeToString(s[:8])
	}
	e.Study, e.Series = key(im.StudyInstanceUID), key(im.SeriesInstanceUID)
	if im.BurnedInAnnotation && !opt.AllowBurnedIn {
		e.Reason = Reason(ErrBurnedIn)
		return e
	}
	if err := im.Decodable(); err != nil {
		e.Reason = Reason(err)
		return e
	}
	if opt.Decode {
		for i := 0; i < im.Frames; i++ {
			if _, err := im.StoredFrame(i); err != nil {
				e.Reason = Reason(err)
				return e
			}
		}
	}
	return e
}
