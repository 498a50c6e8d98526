package pacs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadLabels(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		classes   []string
		err       string
	}{
		{"study and sop", "study_instance_uid,sop_instance_uid,label\n1.1,,normal\n,1.1.9,lesion\n1.2,,1\n", []string{"normal", "lesion"}, ""},
		{"no label column", "study_instance_uid,class\n1.1,0\n", nil, `no "label" column`},
		{"no uid column", "path,label\nx,0\n", nil, "study_instance_uid"},
		{"unknown class", "study_instance_uid,label\n1.1,other\n", []string{"normal", "lesion"}, "line 2: label \"other\" is neither"},
		{"index past the classes", "study_instance_uid,label\n1.1,2\n", []string{"normal", "lesion"}, "line 2"},
		{"conflict", "sop_instance_uid,label\n1.1,0\n1.1,1\n", nil, "line 3: a uid given label 0 earlier"},
		{"empty uids", "study_instance_uid,sop_instance_uid,label\n,,0\n", nil, "line 2: neither"},
		{"ragged", "study_instance_uid,label\n1.1\n", nil, "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "labels.csv")
			os.WriteFile(p, []byte(tc.csv), 0o600)
			l, err := LoadLabels(p, tc.classes)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "labels.csv") {
					t.Fatalf("error %v, want one naming the file and saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				study, sop string
				want       int
				ok         bool
			}{{"1.1", "1.1.8", 0, true}, {"1.1", "1.1.9", 1, true}, {"1.2", "x", 1, true}, {"1.3", "y", 0, false}} {
				if got, ok := l.Label(c.study, c.sop); got != c.want || ok != c.ok {
					t.Errorf("Label(%s, %s) = %d, %v; want %d, %v", c.study, c.sop, got, ok, c.want, c.ok)
				}
			}
		})
	}
}
