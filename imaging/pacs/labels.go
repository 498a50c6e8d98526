package pacs

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Labels give each instance a class: a CSV with a header row, a "label"
// column, and a "study_instance_uid" or "sop_instance_uid" column (or
// both, one filled per row). A label is a class index, or a class name
// when the job's classes are given. An instance's own row wins over its
// study's.
type Labels struct {
	bySOP, byStudy map[string]int
}

// Bounds of a labels file: a hospital's whole archive fits.
const (
	maxLabelBytes = 512 << 20
	maxLabelRows  = 20_000_000
)

// LoadLabels reads a labels CSV. Errors name the file and line.
func LoadLabels(path string, classes []string) (*Labels, error) {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxLabelBytes {
		return nil, fmt.Errorf("labels %s: %d bytes, over the limit of %d", name, st.Size(), maxLabelBytes)
	}
	r := csv.NewReader(f)
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("labels %s: header: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	li, ok := col["label"]
	if !ok {
		return nil, fmt.Errorf("labels %s: no \"label\" column (header %v)", name, header)
	}
	si, hasStudy := col["study_instance_uid"]
	oi, hasSOP := col["sop_instance_uid"]
	if !hasStudy && !hasSOP {
		return nil, fmt.Errorf("labels %s: needs a \"study_instance_uid\" or \"sop_instance_uid\" column", name)
	}
	l := &Labels{bySOP: map[string]int{}, byStudy: map[string]int{}}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return l, nil
		}
		if err != nil {
			return nil, fmt.Errorf("labels %s line %d: %w", name, line, err)
		}
		if line > maxLabelRows {
			return nil, fmt.Errorf("labels %s: more than %d rows", name, maxLabelRows)
		}
		label, err := parseLabel(strings.TrimSpace(rec[li]), classes)
		if err != nil {
			return nil, fmt.Errorf("labels %s line %d: %w", name, line, err)
		}
		set := func(m map[string]int, uid string) error {
			if prev, ok := m[uid]; ok && prev != label {
				return fmt.Errorf("labels %s line %d: a uid given label %d earlier is given %d here", name, line, prev, label)
			}
			m[uid] = label
			return nil
		}
		var sop, study string
		if hasSOP {
			sop = strings.TrimSpace(rec[oi])
		}
		if hasStudy {
			study = strings.TrimSpace(rec[si])
		}
		switch {
		case sop != "":
			err = set(l.bySOP, sop)
		case study != "":
			err = set(l.byStudy, study)
		default:
			err = fmt.Errorf("labels %s line %d: neither a study nor a SOP instance uid", name, line)
		}
		if err != nil {
			return nil, err
		}
	}
}

func parseLabel(v string, classes []string) (int, error) {
	if i := slices.Index(classes, v); i >= 0 {
		return i, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (len(classes) > 0 && n >= len(classes)) {
		if len(classes) > 0 {
			return 0, fmt.Errorf("label %q is neither one of the classes %v nor an index into them", v, classes)
		}
		return 0, fmt.Errorf("label %q is not a class index", v)
	}
	return n, nil
}

// HasInstanceRows says whether some rows label single instances (by SOP
// Instance UID): such labels cannot be checked without the instances' uids.
func (l *Labels) HasInstanceRows() bool { return len(l.bySOP) > 0 }

// Label is the class of an instance, by its own row or its study's.
func (l *Labels) Label(studyUID, sopUID string) (int, bool) {
	if n, ok := l.bySOP[sopUID]; ok {
		return n, true
	}
	n, ok := l.byStudy[studyUID]
	return n, ok
}

// Len is the number of rows.
func (l *Labels) Len() int { return len(l.bySOP) + len(l.byStudy) }
