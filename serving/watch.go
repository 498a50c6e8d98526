package serving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/concord-fl/concord/imaging"
)

// Folders below the watched folder that files are moved into.
const (
	ProcessedDir = "processed"
	FailedDir    = "failed"
)

// maxWatchBatch bounds the files taken in one poll; the rest wait.
const maxWatchBatch = 256

// watchLoop polls the watched folder. A .dcm file is taken once it has
// not changed for one interval (a writer may still be copying it); after
// its study's result is recorded it moves to processed/, and a file that
// cannot be read moves to failed/ with a .reason file beside it.
func (s *Server) watchLoop(ctx context.Context) {
	seen := map[string]int64{} // path → size at the last poll
	for {
		if err := s.pollWatch(ctx, seen); err != nil {
			s.log.Error("watched folder", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.WatchInterval):
		}
	}
}

func (s *Server) pollWatch(ctx context.Context, seen map[string]int64) error {
	dir := s.cfg.WatchDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var ready []string
	var batch int64 // bytes of the files in ready: one batch is held in memory
	now := map[string]int64{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.EqualFold(filepath.Ext(e.Name()), ".dcm") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		now[p] = fi.Size()
		if size, ok := seen[p]; ok && size == fi.Size() && len(ready) < maxWatchBatch &&
			(len(ready) == 0 || batch+size <= s.cfg.MaxRequestBytes) {
			ready = append(ready, p)
			batch += size
		}
	}
	clear(seen)
	for p, n := range now {
		seen[p] = n
	}
	if len(ready) == 0 {
		return nil
	}
	arrived := time.Now()
	var insts []instance
	var paths []string
	for _, p := range ready {
		raw, im, err := readBoundedDICOM(p, s.cfg.MaxRequestBytes)
		if err != nil {
			s.moveAside(p, FailedDir, err.Error())
			continue
		}
		insts = append(insts, instance{raw: raw, image: im})
		paths = append(paths, p)
	}
	outs := s.process(ctx, arrived, insts)
	for i, o := range outs {
		delete(seen, paths[i])
		if o.reason != 0 {
			if o.reason == ReasonSOPNotStored {
				continue // not recorded: left in place, tried again at the next poll
			}
			s.moveAside(paths[i], FailedDir, o.why)
			continue
		}
		s.moveAside(paths[i], ProcessedDir, "")
	}
	return nil
}

func readBoundedDICOM(path string, limit int64) ([]byte, *imaging.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, errors.New("cannot be opened")
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, errors.New("cannot be read")
	}
	if int64(len(raw)) > limit {
		return nil, nil, fmt.Errorf("over %d bytes", limit)
	}
	im, err := imaging.Read(raw, imaging.DefaultLimits)
	if err != nil {
		return nil, nil, errors.New(imaging.Reason(err))
	}
	return raw, im, nil
}

func (s *Server) moveAside(path, sub, reason string) {
	dst := filepath.Join(s.cfg.WatchDir, sub)
	if err := os.MkdirAll(dst, 0o750); err != nil {
		s.log.Error("watched folder: cannot make "+sub, "err", err)
		return
	}
	to := filepath.Join(dst, filepath.Base(path))
	if err := os.Rename(path, to); err != nil {
		s.log.Error("watched folder: cannot move a file aside", "to", sub, "err", err)
		return
	}
	if reason != "" {
		os.WriteFile(to+".reason", []byte(reason+"\n"), 0o640)
		s.log.Warn("watched folder: a file could not be served", "reason", reason)
	}
}
