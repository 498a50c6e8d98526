package installtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/concord-fl/concord/tools/internal/testrepo"
)

// TestCoordinatorStateFromPreviousRelease runs a federated job with the
// previous release (built from git history), then starts this release's
// coordinator on its database: ready (the audit log verified), the job and
// its model served to an admin. Then the previous release's coordinator
// starts again on the same database (a rollback) and still serves them.
func TestCoordinatorStateFromPreviousRelease(t *testing.T) {
	prev := previousRelease(t)
	bin := filepath.Join(release(t, verB), "bin")
	work := t.TempDir()
	testrepo.Run(t, work, nil, filepath.Join(prev, "concord-sim"), "--sites", "2", "--rounds", "2", "--images", "40", "--seed", "1",
		"--secure-aggregation", "none", "--out", "sim")
	fed := filepath.Join(work, "sim", "federation")

	listen, metrics := freeAddr(t), freeAddr(t)
	ctl := filepath.Join(bin, "concordctl")
	testrepo.Run(t, work, nil, ctl, "pki", "issue", "--dir", filepath.Join(fed, "ca"), "--coordinator", "--host", "127.0.0.1", "--out", "kit")
	testrepo.Run(t, work, nil, ctl, "pki", "issue", "--dir", filepath.Join(fed, "ca"), "--admin", "alice", "--out", "admin", "--coordinator-addr", listen)
	config := filepath.Join(work, "coordinator.yaml")
	// The simulator's audit origin and key: the log must verify under them.
	err := os.WriteFile(config, []byte(fmt.Sprintf(`listen: %s
tls: {ca: kit/ca.pem, cert: kit/cert.pem, key: kit/key.pem}
inventory: %s
state_dir: %s
consortium: Concord simulation
audit: {origin: concord.sim/audit, key: %s}
metrics_listen: %s
`, listen, filepath.Join(fed, "ca", "inventory.json"), fed, filepath.Join(fed, "audit-key.pem"), metrics)), 0o600)
	if err != nil {
		t.Fatal(err)
	}

	for _, step := range []struct{ name, bin, ready string }{
		{"this release", filepath.Join(bin, "coordinator"), "/readyz"},
		// The previous release had no /healthz or /readyz yet: its /metrics, and the admin's answers, show it serves.
		{"rollback to the previous release", filepath.Join(prev, "coordinator"), "/metrics"},
	} {
		var logs bytes.Buffer
		cmd := exec.Command(step.bin, "--config", config)
		cmd.Dir, cmd.Stdout, cmd.Stderr = work, &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		ok := waitHTTP("http://"+metrics+step.ready, 30*time.Second)
		var jobs struct {
			Jobs []struct {
				ID           string `json:"id"`
				ModelVersion string `json:"model_version"`
			} `json:"jobs"`
		}
		var listOut string
		if ok {
			listOut, err = ctlOutput(ctl, work, "--config", filepath.Join(work, "admin", "concordctl.yaml"), "jobs", "list", "--json")
			if err == nil {
				err = json.Unmarshal([]byte(listOut), &jobs)
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s: the coordinator did not stop within 30 s of SIGTERM", step.name)
		}
		if !ok {
			t.Fatalf("%s: %s never answered 200 on the previous release's database:\n%s", step.name, step.ready, logs.String())
		}
		if err != nil || len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != "1" || jobs.Jobs[0].ModelVersion != "v1" {
			t.Fatalf("%s: jobs list: %v, want job 1 with model v1:\n%s\nlogs:\n%s", step.name, err, listOut, logs.String())
		}
	}
}

func waitHTTP(url string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

func ctlOutput(ctl, dir string, args ...string) (string, error) {
	cmd := exec.Command(ctl, args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String() + errOut.String(), fmt.Errorf("concordctl %v: %w", args, err)
	}
	return out.String(), nil
}
