package sim

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// buildConcordctl compiles cmd/concordctl.
func buildConcordctl(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "concordctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/concordctl")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build concordctl: %v\n%s", err, b)
	}
	return bin
}

// TestRegistryThroughConcordctl: the admin's commands against a real
// coordinator: two published versions of one job name, listed, shown,
// downloaded and verified against the consortium's trust file, compared;
// a tampered download fails verification naming the file.
func TestRegistryThroughConcordctl(t *testing.T) {
	f, ctx := startFederation(t)
	for i, name := range []string{"site-a", "site-b"} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(48, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, seed := range []string{"1", "2"} {
		if final := runJob(t, ctx, f, testSpec(t, "name: registry\nrounds: 1\nmin_sites: 2\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: "+seed+"\n")); final.ModelVersion == "" {
			t.Fatalf("job ended %s: %s", final.State, final.Reason)
		}
	}
	ctl := buildConcordctl(t)
	work := t.TempDir()
	admin, err := f.Kit(pki.RoleAdmin, "ops")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ConfigYAML(admin, pki.KitConfig{CoordinatorAddr: f.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKit(filepath.Join(work, "kit"), admin, cfg); err != nil {
		t.Fatal(err)
	}
	key, err := audit.ReadKeyFile(filepath.Join(filepath.Dir(f.StatePath()), "audit-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(work, "audit-trust.txt")
	if err := os.WriteFile(trust, []byte("origin concord.sim/audit\nlog "+key.Verifier()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, ctl, append([]string{"--config", filepath.Join(work, "kit", pki.CtlConfigFile)}, args...)...)
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("concordctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var list struct {
		Models []struct {
			Version   string `json:"version"`
			Status    string `json:"status"`
			Parent    string `json:"parent"`
			DeviceUID string `json:"device_uid"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(run(true, "models", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Models) != 2 || list.Models[1].Parent != "v1" || list.Models[1].Status != "published" || !strings.HasPrefix(list.Models[1].DeviceUID, "2.25.") {
		t.Fatalf("models list: %+v", list.Models)
	}
	if out := run(true, "models", "show", "v2", "--trust", trust); !strings.Contains(out, "v1") || !strings.Contains(out, "2.25.") {
		t.Fatalf("models show v2 names no parent or device uid:\n%s", out)
	}
	dir := filepath.Join(work, "v2")
	run(true, "models", "download", "v2", "--out", dir, "--trust", trust)
	run(true, "models", "verify", dir, "--trust", trust)
	if out := run(true, "models", "diff", "v1", dir, "--trust", trust); !strings.Contains(out, "v1") {
		t.Fatalf("models diff:\n%s", out)
	}
	w, err := os.ReadFile(filepath.Join(dir, "model.f32"))
	if err != nil {
		t.Fatal(err)
	}
	w[7] ^= 1
	if err := os.WriteFile(filepath.Join(dir, "model.f32"), w, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(false, "models", "verify", dir, "--trust", trust); !strings.Contains(out, "model.f32") {
		t.Fatalf("a tampered model.f32 is not named:\n%s", out)
	}
}
