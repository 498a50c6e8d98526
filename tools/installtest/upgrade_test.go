package installtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/concord-fl/concord/tools/internal/testrepo"
)

// TestUpgradeFromPreviousRelease takes a site agent's state written by the
// previous release (testdata/make-previous-state.sh) through an upgrade:
// this release's binaries, installed by install.sh, read its privacy
// ledger as the previous release did, run the agent daemon on it, and
// after that the previous release's own binary (built from git history)
// still reads it, which is what a rollback needs.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	a, b := release(t, verA), release(t, verB)
	root := tempRoot(t)
	mustScript(t, a, "install", "--root", root, "--no-activate")
	bin := filepath.Join(root, "usr", "local", "bin")
	state := filepath.Join(root, "var", "lib", "concord", "agent")
	unpackState(t, state)
	agentConfig(t, root, state)
	want := privacyLedger(t, mustRead(t, "testdata/previous-privacy.json"))

	// install.sh upgrade has the new release open the state before it keeps the switch.
	mustScript(t, b, "upgrade", "--root", root, "--no-activate")
	if got := readLink(t, filepath.Join(root, "opt", "concord", "current")); got != "releases/"+verB {
		t.Fatalf("after the upgrade current -> %q", got)
	}

	// 1. This release reads the previous release's ledger as it did.
	if got := privacyLedger(t, testrepo.Run(t, root, nil, filepath.Join(bin, "site-agent"), "privacy", "--state", state, "--json")); got != want {
		t.Fatalf("this release reads the ledger as\n%s\nthe previous release read\n%s", got, want)
	}
	// The previous release kept no sent log: the new command says so plainly.
	if out := testrepo.Run(t, root, nil, filepath.Join(bin, "site-agent"), "sent", "--state", state, "--json"); strings.TrimSpace(out) != `{"sent":[]}` {
		t.Errorf("sent on the previous release's state: %s", out)
	}

	// 2. The agent daemon of this release runs on the state.
	runAgent(t, root, bin, state)
	if got := privacyLedger(t, testrepo.Run(t, root, nil, filepath.Join(bin, "site-agent"), "privacy", "--state", state, "--json")); got != want {
		t.Errorf("after the agent ran, the ledger reads\n%s\nwant\n%s", got, want)
	}

	// 3. Rollback: the previous release's binary reads the state this release ran on.
	prev := previousRelease(t)
	if got := privacyLedger(t, testrepo.Run(t, root, nil, filepath.Join(prev, "site-agent"), "privacy", "--state", state, "--json")); got != want {
		t.Errorf("after the upgrade, the previous release reads the ledger as\n%s\nwant\n%s", got, want)
	}
}

// TestUpgradeUndoneWhenStateUnreadable: an upgrade whose release cannot
// open the agent's state switches back and says why; the state is untouched.
func TestUpgradeUndoneWhenStateUnreadable(t *testing.T) {
	a, b := release(t, verA), release(t, verB)
	root := tempRoot(t)
	mustScript(t, a, "install", "--root", root, "--no-activate")
	state := filepath.Join(root, "var", "lib", "concord", "agent")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "agent.db"), bytes.Repeat([]byte("not bbolt "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	agentConfig(t, root, state)
	before := treeHash(t, state)
	refused(t, b, "upgrade undone: v1.0.0-test.b cannot open the site agent's state", "upgrade", "--root", root, "--no-activate")
	base := filepath.Join(root, "opt", "concord")
	if got := readLink(t, filepath.Join(base, "current")); got != "releases/"+verA {
		t.Errorf("after an undone upgrade current -> %q, want releases/%s", got, verA)
	}
	if got := readLink(t, filepath.Join(base, "previous")); got != "" {
		t.Errorf("after an undone first upgrade previous -> %q, want none", got)
	}
	if out := testrepo.Run(t, root, nil, filepath.Join(root, "usr", "local", "bin", "site-agent"), "version"); !strings.Contains(out, verA) {
		t.Errorf("site-agent is %q after the undone upgrade", out)
	}
	if treeHash(t, state) != before {
		t.Errorf("the undone upgrade changed the state")
	}
}

// agentConfig writes the host's agent.yaml, of which install.sh reads state_dir.
func agentConfig(t *testing.T, root, state string) {
	t.Helper()
	p := filepath.Join(root, "etc", "concord", "agent", "agent.yaml")
	if err := os.WriteFile(p, []byte("site: elm-park-clinic\nstate_dir: "+state+"  # the agent's database\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runAgent starts `site-agent run` on state with a fresh kit for the
// fixture's site, its sealed keys' passphrase and no reachable coordinator;
// it waits for /healthz, then stops the agent with SIGTERM.
func runAgent(t *testing.T, root, bin, state string) {
	t.Helper()
	work := t.TempDir()
	ctl := filepath.Join(bin, "concordctl")
	testrepo.Run(t, work, nil, ctl, "pki", "init", "--dir", "ca")
	testrepo.Run(t, work, nil, ctl, "pki", "issue", "--dir", "ca", "--site", "elm-park-clinic", "--out", "kit",
		"--coordinator-addr", "127.0.0.1:9", "--data-dir", filepath.Join(work, "data"), "--state-dir", state)
	if err := os.MkdirAll(filepath.Join(work, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	// concord-sim sealed the site's keys with this passphrase.
	if err := os.WriteFile(filepath.Join(work, "kit", "passphrase"), []byte("sim-elm-park-clinic"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	f, err := os.OpenFile(filepath.Join(work, "kit", "agent.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "key_passphrase_file: passphrase\nmetrics_listen: %s\n", addr)
	f.Close()

	var logs bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "site-agent"), "run", "--config", filepath.Join(work, "kit", "agent.yaml"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	healthy := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !healthy; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			healthy = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("the agent did not stop within 30 s of SIGTERM")
	}
	if !healthy {
		t.Fatalf("the agent on the previous release's state never answered /healthz:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("the agent logged errors on the previous release's state:\n%s", logs.String())
	}
}

// privacyLedger is what the state holds of the privacy report (budget,
// entries, epsilon spent; not the state folder's path nor the fields later
// releases added to the report), as canonical JSON.
func privacyLedger(t *testing.T, out string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("privacy --json: %v\n%s", err, out)
	}
	kept := map[string]any{"budget": m["budget"], "entries": m["entries"], "epsilon_spent": m["epsilon_spent"]}
	if m["entries"] == nil || m["budget"] == nil {
		t.Fatalf("privacy report has no budget or entries: %s", out)
	}
	data, _ := json.MarshalIndent(kept, "", " ")
	return string(data)
}

func unpackState(t *testing.T, state string) {
	t.Helper()
	parent := filepath.Dir(state)
	testrepo.Run(t, parent, nil, "tar", "-xzf", mustAbs(t, "testdata/previous-agent-state.tar.gz"))
	if err := os.Rename(filepath.Join(parent, "elm-park-clinic"), state); err != nil {
		t.Fatal(err)
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

func mustRead(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
