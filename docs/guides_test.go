package docs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testvault"
)

// guides are the walkthroughs whose commands run, with how long each may take.
var guides = []struct {
	file    string
	timeout time.Duration
	// needs are files (relative to the repository root) the guide's
	// setup uses: missing, the guide fails in CI and is skipped elsewhere.
	needs []string
}{
	{"consortium-admin.md", 6 * time.Minute, nil},
	{"hospital-it.md", 3 * time.Minute, nil},
	{"compliance-officer.md", 6 * time.Minute, nil},
	{"clinician.md", 6 * time.Minute, []string{"internal/testfhir/node_modules/@medplum/fhir-router"}},
	{"vault.md", 4 * time.Minute, []string{"$CONCORD_VAULT"}},
}

// The binaries the guides call are built once, by the first guide that
// runs, into binDir; TestMain removes them.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "concord-docs-bin")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
			"../cmd/coordinator", "../cmd/site-agent", "../cmd/concordctl", "../cmd/concord-sim")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the binaries: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// blocks returns the runnable `sh` blocks of a markdown file, in order, each
// with the line it starts on.
func blocks(t *testing.T, path string) []block {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []block
	var cur *block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			info := strings.Fields(strings.TrimPrefix(trimmed, "```"))
			run := len(info) == 1 && info[0] == "sh"
			cur = &block{line: n + 1, run: run}
		case cur != nil && trimmed == "```":
			if cur.run {
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: the code block at line %d is not closed", path, cur.line)
	}
	return out
}

type block struct {
	line int
	text string
	run  bool
}

// script joins the guide's blocks into one bash script that stops at the
// first failing command and says which block of the guide it was in.
func script(file string, bs []block) string {
	var b strings.Builder
	for i, bl := range bs {
		fmt.Fprintf(&b, "echo '>>> %s block %d (line %d)'\n", file, i+1, bl.line)
		b.WriteString(bl.text)
	}
	b.WriteString("echo '>>> guide finished'\n")
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestGuides(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binaries")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.Missing(t, "curl is needed by the guides: %v", err)
	}
	for _, g := range guides {
		t.Run(strings.TrimSuffix(g.file, ".md"), func(t *testing.T) {
			for _, n := range g.needs {
				if n == "$CONCORD_VAULT" {
					n = testvault.Binary()
				} else {
					n = filepath.Join("..", n)
				}
				if _, err := os.Stat(n); n == "" || err != nil {
					testenv.Missing(t, "%s needs %s (.ci/run installs it): %v", g.file, n, err)
				}
			}
			runGuide(t, g.file, g.timeout)
		})
	}
}

func runGuide(t *testing.T, file string, timeout time.Duration) {
	bin := binaries(t) // before the guide's clock starts
	bs := blocks(t, file)
	if len(bs) == 0 {
		t.Fatalf("%s has no runnable sh block", file)
	}
	work := t.TempDir()
	var full strings.Builder
	full.WriteString("set -euo pipefail\n")
	setup := filepath.Join("testdata", "setup-"+strings.TrimSuffix(file, ".md")+".sh")
	if _, err := os.Stat(setup); err == nil {
		abs, _ := filepath.Abs(setup)
		fmt.Fprintf(&full, "echo '>>> setup'\nsource %q\n", abs)
	}
	full.WriteString(script(file, bs))
	repo, _ := filepath.Abs("..")

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", full.String())
	cmd.Dir = work
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The whole process group goes, daemons the guide started included.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"CONCORD_REPO="+repo,
		"PORT="+strconv.Itoa(freePort(t)),
		"METRICS_PORT="+strconv.Itoa(freePort(t)),
		"COORD_METRICS_PORT="+strconv.Itoa(freePort(t)),
		"SERVE_PORT="+strconv.Itoa(freePort(t)),
		"CONCORD_VAULT="+testvault.Binary(),
		"XDG_CACHE_HOME="+filepath.Join(work, ".cache"),
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil || !strings.Contains(out.String(), ">>> guide finished") {
		logs, _ := filepath.Glob(filepath.Join(work, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", filepath.Base(l), tail(string(b), 4000))
		}
		t.Fatalf("%s: %v (timeout %s)\n%s", file, err, timeout, tail(out.String(), 12000))
	}
	t.Logf("%s ran %d blocks", file, len(bs))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// TestTroubleshootingMessagesExist: every message quoted in a heading of the
// troubleshooting page (### `message`) occurs in the Go source.
func TestTroubleshootingMessagesExist(t *testing.T) {
	page, err := os.ReadFile("troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	msgs := regexp.MustCompile("(?m)^### `([^`]+)`").FindAllSubmatch(page, -1)
	if len(msgs) < 10 {
		t.Fatalf("troubleshooting.md quotes %d messages; expected a page built from the real ones", len(msgs))
	}
	src := sourceText(t, "..")
	for _, m := range msgs {
		msg := string(m[1])
		for _, frag := range strings.Split(msg, "…") {
			frag = strings.TrimSpace(frag)
			if frag != "" && !bytes.Contains(src, []byte(frag)) {
				t.Errorf("troubleshooting.md quotes %q, but %q is in no Go source file: update the page", msg, frag)
			}
		}
	}
}

// sourceText is every non-test Go file under root, concatenated.
func sourceText(t *testing.T, root string) []byte {
	t.Helper()
	var all bytes.Buffer
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "tools") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			all.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.Bytes()
}

// TestNoPipeIntoGrepQ: under `set -o pipefail` (every guide runs so, and so
// do our scripts), `cmd | grep -q x` fails at random: grep exits at its
// first match, and cmd, still writing, dies of SIGPIPE (status 141). The
// scripts and guides write `grep x >/dev/null`, which reads to the end.
func TestNoPipeIntoGrepQ(t *testing.T) {
	repo := ".."
	var files []string
	for _, pat := range []string{"docs/*.md", "docs/testdata/*.sh", "deploy/*/*.sh", "deploy/*.sh", ".ci/run", "Makefile"} {
		m, _ := filepath.Glob(filepath.Join(repo, pat))
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	bad := regexp.MustCompile(`\|\s*grep\s+(-\w*q|--quiet)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if bad.MatchString(line) {
				t.Errorf("%s:%d: a pipe into grep -q fails at random under pipefail (SIGPIPE); write grep ... >/dev/null: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}
