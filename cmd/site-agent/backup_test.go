package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	siteagent "github.com/concord-fl/concord/site-agent"
)

func TestMetricsListenConfig(t *testing.T) {
	t.Setenv("CONCORD_KEY_PASSPHRASE", "a passphrase long enough for the test")
	for _, tc := range []struct{ line, err string }{
		{"metrics_listen: 127.0.0.1:9101\n", ""},
		{"metrics_listen: '[::1]:9101'\n", ""},
		{"metrics_listen: 9101\n", `metrics_listen "9101": give host:port`},
		{"metrics_listen: 127.0.0.1:http\n", `metrics_listen "127.0.0.1:http": give host:port`},
		{"metrics_listen: 127.0.0.1:70000\n", "port out of range"},
		{"metrics_lisen: 127.0.0.1:9101\n", "unknown key metrics_lisen"},
	} {
		path := siteKit(t)
		withConfig(t, path, func(s string) string { return s + tc.line })
		cfg, _, closeFn, err := load(path)
		closeFn()
		switch {
		case tc.err == "" && (err != nil || cfg.MetricsListen == ""):
			t.Errorf("%q: %v (listen %q)", tc.line, err, cfg.MetricsListen)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.line, err, tc.err)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestBackupAndRestoreCommands: site-agent backup asks a running agent on
// its management listener and reads a stopped agent's state read-only;
// site-agent restore refuses a running agent and installs a backup into a
// fresh state folder, where site-agent privacy reads the ledger.
func TestBackupAndRestoreCommands(t *testing.T) {
	t.Setenv("CONCORD_KEY_PASSPHRASE", "a passphrase long enough for the test")
	path := siteKit(t)
	state := filepath.Join(t.TempDir(), "state")
	withConfig(t, path, func(s string) string {
		s = strings.Replace(s, "state_dir: /var/lib/concord/agent", "state_dir: "+state, 1)
		return s + "privacy:\n  budget: {epsilon: 8, delta: 1e-5}\nmetrics_listen: " + freeAddr(t) + "\n"
	})
	cfg, _, closeFn, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	a, err := siteagent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	dir := t.TempDir()
	online, offline := filepath.Join(dir, "online.db"), filepath.Join(dir, "offline.db")
	var out, errb bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for code := 1; code != 0; { // the listener serves once Run has started
		out.Reset()
		errb.Reset()
		if code = run([]string{"backup", "--config", path, "--out", online}, &out, &errb); code != 0 && time.Now().After(deadline) {
			t.Fatalf("backup of the running agent: exit %d: %s", code, errb.String())
		}
	}
	if !strings.Contains(out.String(), "from the running agent") || !strings.Contains(out.String(), "sha256 ") {
		t.Errorf("backup output: %s", out.String())
	}
	if code := run([]string{"restore", "--config", path, online}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stop the agent") {
		t.Errorf("restore over a running agent: exit %d: %s", code, errb.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"backup", "--config", path, "--out", offline}, &out, &errb); code != 0 || !strings.Contains(out.String(), "stopped agent's state") {
		t.Fatalf("backup of the stopped agent: exit %d: %s %s", code, out.String(), errb.String())
	}

	// A fresh host: same kit, an empty state folder.
	fresh := filepath.Join(t.TempDir(), "fresh")
	withConfig(t, path, func(s string) string { return strings.Replace(s, "state_dir: "+state, "state_dir: "+fresh, 1) })
	out.Reset()
	if code := run([]string{"restore", "--config", path, online}, &out, &errb); code != 0 || !strings.Contains(out.String(), "restored") {
		t.Fatalf("restore: exit %d: %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"privacy", "--config", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "record-level privacy budget: epsilon 8") {
		t.Fatalf("privacy after restore: exit %d: %s %s", code, out.String(), errb.String())
	}
	if code := run([]string{"restore", "--config", path, path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not a readable database") {
		t.Errorf("restoring agent.yaml: exit %d: %s", code, errb.String())
	}
}
