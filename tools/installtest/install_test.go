package installtest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/concord-fl/concord/tools/internal/testrepo"
)

const (
	verA = "v1.0.0-test.a"
	verB = "v1.0.0-test.b"
)

// TestInstallUpgradeRollback installs release A, upgrades to B and rolls
// back twice, checking after each step which binaries the fixed paths run
// and that the state folder is byte-for-byte what it was.
func TestInstallUpgradeRollback(t *testing.T) {
	a, b := release(t, verA), release(t, verB)
	root := tempRoot(t)
	flags := []string{"--root", root, "--no-activate"}
	base := filepath.Join(root, "opt", "concord")

	refused(t, b, "run ./install.sh install first", append([]string{"upgrade"}, flags...)...)
	mustScript(t, a, append([]string{"install"}, flags...)...)
	state := filepath.Join(root, "var", "lib", "concord")
	writeState(t, state)
	before := treeHash(t, state)

	check := func(step, current, previous string) {
		t.Helper()
		if got := readLink(t, filepath.Join(base, "current")); got != "releases/"+current {
			t.Errorf("%s: current -> %q, want releases/%s", step, got, current)
		}
		if got := readLink(t, filepath.Join(base, "previous")); previous != "" && got != "releases/"+previous {
			t.Errorf("%s: previous -> %q, want releases/%s", step, got, previous)
		}
		for _, bin := range []string{"coordinator", "site-agent", "concordctl"} {
			out := testrepo.Run(t, root, nil, filepath.Join(root, "usr", "local", "bin", bin), "--version")
			if !strings.Contains(out, current) {
				t.Errorf("%s: %s --version prints %q, want %s", step, bin, out, current)
			}
		}
		if after := treeHash(t, state); after != before {
			t.Errorf("%s: the state folder changed", step)
		}
	}
	check("install", verA, "")
	for _, u := range []string{"concord-coordinator.service", "concord-site-agent.service"} {
		got, err := os.ReadFile(filepath.Join(root, "etc", "systemd", "system", u))
		want, err2 := os.ReadFile(filepath.Join(testrepo.Root(t), "deploy", "systemd", u))
		if err != nil || err2 != nil || !bytes.Equal(got, want) {
			t.Errorf("unit %s not installed as in deploy/systemd (%v, %v)", u, err, err2)
		}
	}
	refused(t, a, "already the current one", append([]string{"install"}, flags...)...)
	refused(t, b, "Concord is already installed (v1.0.0-test.a); to move to v1.0.0-test.b run: ./install.sh upgrade", append([]string{"install"}, flags...)...)

	mustScript(t, b, append([]string{"upgrade"}, flags...)...)
	check("upgrade", verB, verA)
	refused(t, b, "already the current one", append([]string{"upgrade"}, flags...)...)

	// Rollback runs from the installed release: the archive may be gone.
	installed := filepath.Join(base, "current")
	mustScript(t, installed, append([]string{"rollback"}, flags...)...)
	check("rollback", verA, verB)
	mustScript(t, installed, append([]string{"rollback"}, flags...)...)
	check("second rollback", verB, verA)

	out := mustScript(t, b, "status", "--root", root)
	if !strings.Contains(out, "current:  releases/"+verB) || !strings.Contains(out, verA+" "+verB) {
		t.Errorf("status:\n%s", out)
	}
}

func TestRollbackWithoutPrevious(t *testing.T) {
	a := release(t, verA)
	root := tempRoot(t)
	mustScript(t, a, "install", "--root", root, "--no-activate")
	refused(t, a, "no previous release to roll back to (only v1.0.0-test.a was ever installed here)", "rollback", "--root", root, "--no-activate")
}

// TestDamagedArchiveIsRefused changes one byte of a binary, then adds a
// file: verify and install refuse both, and install leaves nothing behind.
func TestDamagedArchiveIsRefused(t *testing.T) {
	a := release(t, verA)
	for _, tc := range []struct {
		name   string
		damage func(dir string) error
		want   string
	}{
		{"changed binary", func(dir string) error {
			p := filepath.Join(dir, "bin", "site-agent")
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			data[len(data)/2] ^= 1
			return os.WriteFile(p, data, 0o755)
		}, "checksum mismatch"},
		{"extra file", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "bin", "helper"), []byte("#!/bin/sh\n"), 0o755)
		}, "files not in SHA256SUMS: bin/helper"},
		{"missing VERSION", func(dir string) error { return os.Remove(filepath.Join(dir, "VERSION")) }, "has no VERSION file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "release")
			testrepo.Run(t, "/", nil, "cp", "-a", a, dir)
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			refused(t, dir, tc.want, "verify")
			root := tempRoot(t)
			refused(t, dir, tc.want, "install", "--root", root, "--no-activate")
			if _, err := os.Lstat(filepath.Join(root, "opt", "concord")); err == nil {
				t.Errorf("a refused install left %s behind", filepath.Join(root, "opt", "concord"))
			}
		})
	}
}

// TestExampleConfigs: every key in the shipped example configs is one the
// daemons know (their loaders reject unknown keys); they stop only at the
// kit files the example does not have.
func TestExampleConfigs(t *testing.T) {
	a := release(t, verA)
	for _, tc := range []struct{ bin, config, want string }{
		{"site-agent", "agent.yaml.example", "cert.pem: no such file or directory"},
		{"coordinator", "coordinator.yaml.example", "ca.pem: no such file or directory"},
	} {
		args := []string{"--config", filepath.Join(a, "etc", tc.config)}
		if tc.bin == "site-agent" {
			args = append([]string{"run"}, args...)
		}
		out, err := exec.Command(filepath.Join(a, "bin", tc.bin), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "unknown key") {
			t.Errorf("%s %v: %v, want a stop at the missing kit (%q):\n%s", tc.bin, args, err, tc.want, out)
		}
	}
}

// writeState puts a small agent-like state folder in place.
func writeState(t *testing.T, dir string) {
	t.Helper()
	for name, data := range map[string]string{
		"agent/agent.db":          "not a real database: install.sh must not open it",
		"agent/pending/upload-1":  "pending upload",
		"coordinator/state.db":    "coordinator state",
		"coordinator/audit/a.log": "audit",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// treeHash hashes the names, modes and contents of every file under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", strings.TrimPrefix(p, dir), fi.Mode())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(lines, "\n"))))
}
