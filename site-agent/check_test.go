package siteagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// patient is a folder name that identifies a patient, as sites name them.
const patient = "DOE^JANE_19570312"

// writeTree creates files (paths relative to root; a trailing slash makes
// an empty folder).
func writeTree(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("not decoded by the check"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDICOMFolderCheck(t *testing.T) {
	classes := []string{"normal", "pneumonia"}
	spec := &pb.JobSpec{Pipeline: &pb.PipelineSpec{Width: 32, Height: 32, Channels: 1, Resample: "area", Normalise: "zscore"}}
	cases := []struct {
		name     string
		tree     []string
		dir      string // relative to the case's root; default "xrays"
		classes  []string
		examples int
		problem  []string // all must appear; empty: healthy
	}{
		{name: "healthy, nested patient folders counted", classes: classes, examples: 3,
			tree: []string{"xrays/normal/" + patient + "/1.dcm", "xrays/normal/" + patient + "/2.dcm", "xrays/pneumonia/p2/1.dcm",
				"xrays/pneumonia/.DS_Store", "xrays/.hidden/x.dcm"}},
		{name: "missing folder", classes: classes, dir: "absent",
			problem: []string{"data folder 'absent' does not exist", "data.dir"}},
		{name: "a file, not a folder", classes: classes, dir: "file.dcm", tree: []string{"file.dcm"},
			problem: []string{"'file.dcm'", "is a file"}},
		{name: "class folder missing", classes: classes, tree: []string{"xrays/normal/" + patient + "/1.dcm"},
			problem: []string{`class folder "pneumonia" is missing`, "'xrays'", "data.classes"}},
		{name: "patient folder one level too high", classes: classes,
			tree:    []string{"xrays/normal/1.dcm", "xrays/pneumonia/1.dcm", "xrays/" + patient + "/1.dcm"},
			problem: []string{"1 folder(s) besides the classes", "data.classes"}},
		{name: "class folders empty", classes: classes, tree: []string{"xrays/normal/" + patient + "/", "xrays/pneumonia/"},
			problem: []string{"hold no files", "copy the site's images"}},
		{name: "no classes configured, one folder", tree: []string{"xrays/" + patient + "/1.dcm"},
			problem: []string{"holds 1 class folder(s), training needs at least 2", "data.classes"}},
		{name: "no classes configured, two folders", tree: []string{"xrays/a/1.dcm", "xrays/b/1.dcm", "xrays/b/2.dcm"}, examples: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, c.tree...)
			dir := c.dir
			if dir == "" {
				dir = "xrays"
			}
			d := &DICOMFolder{Dir: filepath.Join(root, dir), Classes: c.classes}
			n, problem := d.Check()
			if len(c.problem) == 0 {
				if problem != "" || n != c.examples {
					t.Fatalf("got %d examples, problem %q; want %d, healthy", n, problem, c.examples)
				}
				if d.Examples() != c.examples {
					t.Fatalf("Examples() = %d, want %d", d.Examples(), c.examples)
				}
				return
			}
			if problem == "" {
				t.Fatalf("no problem found (%d examples)", n)
			}
			for _, w := range c.problem {
				if !strings.Contains(problem, w) {
					t.Errorf("problem %q lacks %q", problem, w)
				}
			}
			if strings.Contains(problem, root) || strings.Contains(problem, patient) {
				t.Errorf("problem %q names a path or a patient folder", problem)
			}
			if _, err := d.Dataset(t.Context(), spec); err == nil || !errors.Is(err, ErrPermanent) || err.Error() != problem {
				t.Errorf("Dataset: %v; want the check's problem, permanent", err)
			}
		})
	}
}

// deniedFS refuses to open one path, as a folder without read permission
// does for anyone but root (so the test runs the same as root, in CI).
type deniedFS struct {
	fs.FS
	denied string
}

func (d deniedFS) Open(name string) (fs.File, error) {
	if name == d.denied {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return d.FS.Open(name)
}

func TestUnreadableClassFolderIsNamedWithoutItsContents(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, "normal/1.dcm", "pneumonia/"+patient+"/1.dcm")
	folder := &DICOMFolder{Dir: root, Classes: []string{"normal", "pneumonia"},
		classFS: func(dir string) fs.FS { return deniedFS{os.DirFS(dir), patient} }}
	_, problem := folder.Check()
	if !strings.Contains(problem, `under class folder "pneumonia" cannot be read`) || strings.Contains(problem, patient) {
		t.Fatalf("problem %q", problem)
	}
}

func TestDetailIsPathFreeAndBounded(t *testing.T) {
	data := filepath.Join(t.TempDir(), "site-data")
	a := &Agent{cfg: Config{StateDir: "/var/lib/concord/agent", Data: &DICOMFolder{Dir: data}}}
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("open %s/pneumonia/%s/1.dcm: permission denied", data, patient), "open 'site-data': permission denied"},
		{fmt.Errorf(`load dataset class "normal": lstat "%s/normal/%s": no such file`, data, patient), `load dataset class "normal": lstat "'site-data'": no such file`},
		{errors.New("pending upload file: open /var/lib/concord/agent/pending/ab.bin: no space left"), "pending upload file: open 'agent': no space left"},
		{errors.New("line one\nline two\x00"), "line one line two "},
	}
	for _, c := range cases {
		if got := a.detail(c.err); got != c.want {
			t.Errorf("detail(%q)\n got %q\nwant %q", c.err, got, c.want)
		}
	}
	long := a.detail(errors.New(strings.Repeat("é", 5000)))
	if len(long) > maxDetail || !utf8.ValidString(long) || !strings.HasSuffix(long, "…") {
		t.Fatalf("a long reason became %d bytes (valid UTF-8: %v)", len(long), utf8.ValidString(long))
	}
}

// FuzzDetail: whatever an error says, the reason that leaves the site
// holds no path below the data folder, is valid UTF-8 and fits the bound.
func FuzzDetail(f *testing.F) {
	const data = "/srv/pacs/export/site-data"
	a := &Agent{cfg: Config{StateDir: "/var/lib/concord", Data: &DICOMFolder{Dir: data}}}
	f.Add("open " + data + "/pneumonia/" + patient + "/1.dcm: denied")
	f.Add(`walk "` + data + `/normal": ` + strings.Repeat("x", 2000))
	f.Add(data + data + "/\xff\x00" + data)
	f.Fuzz(func(t *testing.T, msg string) {
		got := a.detail(errors.New(msg))
		if strings.Contains(got, data) || len(got) > maxDetail || !utf8.ValidString(got) {
			t.Fatalf("detail(%q) = %q", msg, got)
		}
	})
}

// vanishingFS reports a folder as gone the first times it is walked, as
// when the data folder is moved away in the middle of a check.
type vanishingFS struct {
	fs.FS
	gone *int
}

func (v vanishingFS) Open(name string) (fs.File, error) {
	if name == "." && *v.gone > 0 {
		*v.gone--
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return v.FS.Open(name)
}

// TestCheckLooksAgainWhenTheFolderChanges: a class folder that vanishes
// while it is counted is not reported as unreadable; the check looks again
// and describes the folder as it is.
func TestCheckLooksAgainWhenTheFolderChanges(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, "normal/1.dcm", "pneumonia/2.dcm")
	gone := 1
	folder := &DICOMFolder{Dir: root, Classes: []string{"normal", "pneumonia"},
		classFS: func(dir string) fs.FS { return vanishingFS{os.DirFS(dir), &gone} }}
	if n, problem := folder.Check(); n != 2 || problem != "" {
		t.Fatalf("got %d examples, problem %q; want 2, healthy", n, problem)
	}
}
