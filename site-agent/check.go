package siteagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Checker is an optional ability of a DataSource: a cheap look (no
// decoding) at whether the data can be trained on. problem is empty when
// it can; otherwise it says what is wrong and what to do, and names no
// file or folder below the data folder (those may carry patient names).
// The agent checks at start-up, before each training task and every
// Config.CheckInterval, and tells the coordinator when the answer changes.
type Checker interface {
	Check() (examples int, problem string)
}

// Check implements Checker.
func (m MemoryData) Check() (int, string) {
	if m.Data.N == 0 {
		return 0, "the site's dataset is empty: give the site training examples"
	}
	return m.Data.N, ""
}

// Folder is the configured data folder; only its base name ever appears
// in what the agent sends.
func (d *DICOMFolder) Folder() string { return d.Dir }

// Check implements Checker: the data folder exists and is readable, its
// class folders are the configured classes, and they hold files. Files are
// counted, not decoded; a file that cannot be decoded is found (and
// counted by reason) when a job loads the data.
func (d *DICOMFolder) Check() (int, string) { return d.check(2) }

// check looks at the data folder; when part of it vanishes while it is
// being counted (moved or removed at that moment), it looks again, up to
// retries times, so that the answer describes the folder as it is now
// rather than "cannot be read".
func (d *DICOMFolder) check(retries int) (int, string) {
	base := "'" + filepath.Base(filepath.Clean(d.Dir)) + "'"
	if d.Dir == "" {
		return 0, "no data folder is configured: set data.dir in agent.yaml"
	}
	fi, err := os.Stat(d.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Sprintf("the data folder %s does not exist: create it (one sub-folder per class) or fix data.dir in agent.yaml", base)
	case errors.Is(err, fs.ErrPermission):
		return 0, fmt.Sprintf("the agent may not read the data folder %s: give the agent's user read access", base)
	case err != nil:
		return 0, fmt.Sprintf("the data folder %s cannot be read (%s): check the disk or mount", base, errKind(err))
	case !fi.IsDir():
		return 0, fmt.Sprintf("data.dir names %s, which is a file, not a folder: point data.dir at the folder holding one sub-folder per class", base)
	}
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return 0, fmt.Sprintf("the data folder %s cannot be listed (%s): give the agent's user read access", base, errKind(err))
	}
	var found []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			found = append(found, e.Name())
		}
	}
	sort.Strings(found)
	classes := d.Classes
	if len(classes) > 0 {
		for _, c := range classes {
			if !slices.Contains(found, c) {
				return 0, fmt.Sprintf("class folder %q is missing under the data folder %s: create it or fix data.classes in agent.yaml", c, base)
			}
		}
		// Folders that are not classes are not named: a patient's folder
		// put one level too high would be.
		if extra := len(found) - len(classes); extra > 0 {
			return 0, fmt.Sprintf("the data folder %s holds %d folder(s) besides the classes %q: move them into a class folder or out of the data folder, or add the class to data.classes",
				base, extra, classes)
		}
	} else {
		if len(found) < 2 {
			return 0, fmt.Sprintf("the data folder %s holds %d class folder(s), training needs at least 2: create one sub-folder per class and set data.classes in agent.yaml", base, len(found))
		}
		classes = found
	}
	total := 0
	for _, c := range classes {
		open := d.classFS
		if open == nil {
			open = os.DirFS
		}
		n, err := countFiles(open(filepath.Join(d.Dir, c)))
		if errors.Is(err, fs.ErrNotExist) && retries > 0 {
			return d.check(retries - 1)
		}
		if err != nil {
			return 0, fmt.Sprintf("some files or folders under class folder %q cannot be read (%s): give the agent's user read access", c, errKind(err))
		}
		total += n
	}
	if total == 0 {
		return 0, fmt.Sprintf("the class folders under the data folder %s hold no files: copy the site's images into them", base)
	}
	return total, ""
}

// countFiles counts the regular, non-hidden files below dir, as
// imaging.LoadFolderDataset would list them.
func countFiles(fsys fs.FS) (int, error) {
	n := 0
	err := fs.WalkDir(fsys, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != "." && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n, err
}

// errKind names a file system error without its path.
func errKind(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, fs.ErrNotExist):
		return "not found"
	}
	return "input/output error"
}
