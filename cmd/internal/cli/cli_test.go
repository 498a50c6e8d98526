package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestSuggest(t *testing.T) {
	names := []string{"list", "submit", "status", "watch", "abort"}
	for _, tc := range []struct{ in, want string }{
		{"lsit", "list"},
		{"stauts", "status"},
		{"sumbit", "submit"},
		{"wach", "watch"},
		{"frobnicate", ""},
		{"x", ""},
	} {
		if got := Suggest(tc.in, names); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func testTree(ran *[]string) []*Command {
	leaf := &Command{Name: "list", Args: "[--job ID]", Synopsis: "list things"}
	leaf.Run = func(args []string, stdout, stderr io.Writer) int {
		fs := leaf.NewFlagSet(stderr)
		job := fs.String("job", "", "job `ID`")
		pos, code, ok := leaf.Parse(fs, args, stdout, stderr)
		if !ok {
			return code
		}
		*ran = append(*ran, "job="+*job+" pos="+strings.Join(pos, ","))
		return 0
	}
	return []*Command{{Name: "jobs", Synopsis: "jobs", Sub: []*Command{leaf}}}
}

func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		out, errs  string // substrings of stdout and stderr
		ran        string
		quietOut   bool
		quietErrIs bool
	}{
		{args: nil, code: 2, errs: "usage: prog COMMAND", quietOut: true},
		{args: []string{"help"}, code: 0, out: "jobs", quietErrIs: true},
		{args: []string{"--help"}, code: 0, out: "commands:", quietErrIs: true},
		{args: []string{"help", "jobs", "list"}, code: 0, out: "usage: prog jobs list [--job ID]", quietErrIs: true},
		{args: []string{"jbos"}, code: 2, errs: `did you mean "jobs"?`, quietOut: true},
		{args: []string{"jobs", "lst"}, code: 2, errs: `did you mean "list"?`, quietOut: true},
		{args: []string{"jobs", "list", "-h"}, code: 0, out: "-job ID", quietErrIs: true},
		{args: []string{"jobs", "list", "--jobb", "3"}, code: 2, errs: "did you mean --job?", quietOut: true},
		{args: []string{"jobs", "list", "a", "--job", "3", "b"}, code: 0, ran: "job=3 pos=a,b"},
		{args: []string{"jobs", "list", "--", "--job"}, code: 0, ran: "job= pos=--job"},
	} {
		var ran []string
		var out, errb bytes.Buffer
		code := Dispatch("prog", "", testTree(&ran), tc.args, &out, &errb)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errs) {
			t.Errorf("%v: stdout %q, stderr %q", tc.args, out.String(), errb.String())
		}
		if tc.quietOut && out.Len() > 0 {
			t.Errorf("%v: wrote to stdout on error: %q", tc.args, out.String())
		}
		if tc.quietErrIs && errb.Len() > 0 {
			t.Errorf("%v: wrote to stderr for help: %q", tc.args, errb.String())
		}
		if tc.ran != "" && (len(ran) != 1 || ran[0] != tc.ran) {
			t.Errorf("%v: ran %v, want %q", tc.args, ran, tc.ran)
		}
	}
}

func TestNoArgsAndVersion(t *testing.T) {
	c := Version("prog", "1.2.3")
	var out, errb bytes.Buffer
	if code := Dispatch("prog", "", []*Command{c}, []string{"version"}, &out, &errb); code != 0 || out.String() != "prog 1.2.3\n" {
		t.Errorf("version: exit %d, %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Dispatch("prog", "", []*Command{c}, []string{"version", "extra"}, &out, &errb); code != 2 || out.Len() != 0 {
		t.Errorf("version extra: exit %d", code)
	}
	leaf := &Command{Name: "run"}
	fs := leaf.NewFlagSet(&errb)
	fs.Bool("version", false, "")
	errb.Reset()
	if code, ok := leaf.NoArgs(fs, []string{"verison"}, &errb); ok || code != 2 || !strings.Contains(errb.String(), "did you mean --version?") {
		t.Errorf("NoArgs: %d %v %q", code, ok, errb.String())
	}
	if _, ok := leaf.NoArgs(fs, nil, &errb); !ok {
		t.Error("NoArgs refused no arguments")
	}
}
