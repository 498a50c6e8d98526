package siteagent

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/concord-fl/concord/imaging"
)

// Clinicians who disagree with a finding record the correct label; the
// serving side writes the image into the feedback folder under its class,
// in the same folder-per-class layout as the data folder
// (dir/<class>/**/*.dcm). Those corrections are the most valuable examples
// a site has (the ones the model got wrong, labelled by the people it
// serves), so the next job trains on them, and the drift report counts the
// ones that arrived since the baseline so the consortium sees when enough
// have accumulated to retrain.

// FeedbackConfig is where clinicians' corrections are collected.
type FeedbackConfig struct {
	// Dir is the feedback folder, dir/<class>/**; empty: none. The same
	// folder is DICOMFolder.Feedback, so corrections are trained on.
	Dir string
}

// countFeedback counts the correction files in the class folders of dir
// modified after since (the baseline: what arrived after it has not been
// trained on yet). A file copied in with its old modification time kept
// (cp -p, rsync -a) is not counted; the serving side writes new files. A
// missing folder counts 0: no clinician has disagreed yet.
func countFeedback(dir string, since time.Time) (int, error) {
	if _, err := os.Stat(dir); err != nil && os.IsNotExist(err) {
		return 0, nil
	}
	n := 0
	err := walkClassFiles(dir, func(_ string, class string, e fs.DirEntry) {
		if fi, err := e.Info(); err == nil && fi.ModTime().After(since) {
			n++
		}
	})
	return n, err
}

// walkClassFiles calls fn for each regular, non-hidden file below a
// non-hidden sub-folder (a class) of dir, as imaging.LoadFolderDataset
// lists them. Files directly in dir belong to no class and are left out.
func walkClassFiles(dir string, fn func(path, class string, e fs.DirEntry)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, c := range entries {
		if !c.IsDir() || strings.HasPrefix(c.Name(), ".") {
			continue
		}
		err := filepath.WalkDir(filepath.Join(dir, c.Name()), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if e.Type().IsRegular() {
				fn(path, c.Name(), e)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// feedbackExamples lists the feedback folder's examples labelled by the
// data folder's class folders (folders, in label order). A correction in a
// class the job does not know cannot be trained on: it is counted under
// other and left out. A missing feedback folder has no examples.
func feedbackExamples(dir string, folders []string) (ex []imaging.Example, other int, err error) {
	if _, err := os.Stat(dir); err != nil && os.IsNotExist(err) {
		return nil, 0, nil
	}
	err = walkClassFiles(dir, func(path, class string, _ fs.DirEntry) {
		if i := slices.Index(folders, class); i >= 0 {
			ex = append(ex, imaging.Example{Path: path, Label: i})
		} else {
			other++
		}
	})
	return ex, other, err
}

// feedbackKey distinguishes cached datasets by the feedback they include:
// a correction that arrives after a job loaded the data is in the next
// job's, even when the two share a pipeline.
func feedbackKey(dir string) string {
	if dir == "" {
		return ""
	}
	n := 0
	var latest time.Time
	walkClassFiles(dir, func(_ string, _ string, e fs.DirEntry) {
		n++
		if fi, err := e.Info(); err == nil && fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	})
	return "+feedback:" + strconv.Itoa(n) + "@" + strconv.FormatInt(latest.UnixNano(), 10)
}
