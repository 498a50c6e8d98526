package imaging

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Example is one labelled image file.
type Example struct {
	Path string
	// Label is the class index.
	Label int
	// SOPInstanceUID is raw (from the manifest or the file); de-identify before recording.
	SOPInstanceUID string
}

// LoadFolderDataset reads a folder-per-class layout: dir/<class>/**/<file>. Classes are
// the sub-folder names in sorted order; the label is the class index. Hidden files and
// folders are skipped.
func LoadFolderDataset(dir string) ([]Example, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load dataset: %w", err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	if len(classes) < 2 {
		return nil, nil, fmt.Errorf("load dataset %s: found %d class folders, need at least 2 (one folder per class)", dir, len(classes))
	}
	var out []Example
	for label, c := range classes {
		err := filepath.WalkDir(filepath.Join(dir, c), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				out = append(out, Example{Path: path, Label: label})
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("load dataset class %q: %w", c, err)
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("load dataset %s: class folders hold no files", dir)
	}
	return out, classes, nil
}

// LoadManifest reads a CSV manifest with a header row. It needs a "label" column (an
// integer class index) and either a "path" column (relative to root, or absolute) or a
// "sop_instance_uid" column; UIDs are resolved to files by scanning root's headers.
func LoadManifest(csvPath, root string) ([]Example, error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("load manifest %s: header: %w", filepath.Base(csvPath), err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	li, ok := col["label"]
	if !ok {
		return nil, fmt.Errorf("load manifest %s: no \"label\" column (header %v)", filepath.Base(csvPath), header)
	}
	pi, hasPath := col["path"]
	ui, hasUID := col["sop_instance_uid"]
	if !hasPath && !hasUID {
		return nil, fmt.Errorf("load manifest %s: needs a \"path\" or \"sop_instance_uid\" column", filepath.Base(csvPath))
	}
	var out []Example
	line := 1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("load manifest %s line %d: %w", filepath.Base(csvPath), line, err)
		}
		label, err := strconv.Atoi(strings.TrimSpace(rec[li]))
		if err != nil || label < 0 {
			return nil, fmt.Errorf("load manifest %s line %d: label %q is not a class index", filepath.Base(csvPath), line, rec[li])
		}
		ex := Example{Label: label}
		if hasPath && strings.TrimSpace(rec[pi]) != "" {
			p := strings.TrimSpace(rec[pi])
			if !filepath.IsAbs(p) {
				p = filepath.Join(root, p)
			}
			ex.Path = p
		}
		if hasUID {
			ex.SOPInstanceUID = strings.TrimSpace(rec[ui])
		}
		if ex.Path == "" && ex.SOPInstanceUID == "" {
			return nil, fmt.Errorf("load manifest %s line %d: neither path nor uid given", filepath.Base(csvPath), line)
		}
		out = append(out, ex)
	}
	if hasUID {
		if err := resolveUIDs(out, root); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// resolveUIDs fills Path for examples given only by SOP Instance UID.
func resolveUIDs(ex []Example, root string) error {
	need := map[string]int{}
	for i, e := range ex {
		if e.Path == "" {
			need[e.SOPInstanceUID] = i
		}
	}
	if len(need) == 0 {
		return nil
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		uid, err := headerSOPInstanceUID(path)
		if err != nil {
			return nil
		}
		if i, ok := need[uid]; ok {
			ex[i].Path = path
			delete(need, uid)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resolve manifest uids: %w", err)
	}
	if len(need) > 0 {
		return fmt.Errorf("load manifest: %d sop instance uids not found under %s", len(need), root)
	}
	return nil
}

func headerSOPInstanceUID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := Parse(b, DefaultLimits)
	if err != nil {
		return "", err
	}
	return f.Data.String(tagSOPInstanceUID), nil
}
