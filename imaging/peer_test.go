package imaging

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/concord-fl/concord/internal/testenv"
)

// suyashkumarParse parses headers with github.com/suyashkumar/dicom, turning its panics
// into errors (it panics on some real files).
func suyashkumarParse(path string) (ds dicom.Dataset, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return dicom.ParseFile(path, nil, dicom.SkipPixelData())
}

func peerString(ds dicom.Dataset, t tag.Tag) (string, bool) {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return "", false
	}
	switch v := e.Value.GetValue().(type) {
	case []string:
		return strings.TrimSpace(strings.Join(v, `\`)), true
	case []int:
		if len(v) > 0 {
			return fmt.Sprint(v[0]), true
		}
	}
	return "", false
}

// TestHeadersAgainstSuyashkumar cross-checks header values with the other Go DICOM
// reader on every file both parse, and reports where only one of them does.
func TestHeadersAgainstSuyashkumar(t *testing.T) {
	var files []string
	for _, d := range []string{moduleTestdata(t), testenv.Shared(t, "data/dicom/pydicom")} {
		f, _ := filepath.Glob(filepath.Join(d, "*.dcm"))
		files = append(files, f...)
	}
	both, onlyUs, onlyThem, neither := 0, 0, 0, 0
	for _, p := range files {
		theirs, errThem := suyashkumarParse(p)
		ours, errUs := ReadFile(p)
		var uf *File
		if errUs != nil {
			if f, err := parseFile(p); err == nil {
				uf, errUs = f, nil
			}
		} else {
			uf = ours.File
		}
		switch {
		case errThem != nil && errUs != nil:
			neither++
			continue
		case errThem != nil:
			onlyUs++
			t.Logf("%s: only ours parses (theirs: %v)", filepath.Base(p), errThem)
			continue
		case errUs != nil:
			onlyThem++
			t.Logf("%s: only theirs parses (ours: %v)", filepath.Base(p), errUs)
			continue
		}
		both++
		for _, c := range []struct {
			ours  Tag
			their tag.Tag
		}{{tagSOPInstanceUID, tag.SOPInstanceUID}, {tagModality, tag.Modality}, {tagRows, tag.Rows}, {tagColumns, tag.Columns}, {tagStudyInstanceUID, tag.StudyInstanceUID}} {
			want, ok := peerString(theirs, c.their)
			if !ok {
				continue
			}
			got := uf.Data.String(c.ours)
			if c.ours == tagRows || c.ours == tagColumns {
				n, _ := uf.Data.Uint(c.ours, 0)
				got = fmt.Sprint(n)
			}
			if strings.TrimSpace(got) != want {
				t.Errorf("%s %s: ours %q, theirs %q", filepath.Base(p), c.ours, got, want)
			}
		}
	}
	t.Logf("both parse %d, only ours %d, only theirs %d, neither %d", both, onlyUs, onlyThem, neither)
	if both < 40 {
		t.Errorf("only %d files parsed by both readers", both)
	}
}

func parseFile(p string) (*File, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return Parse(b, DefaultLimits)
}
