package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
)

// runPKI runs `concordctl pki ARGS` (a leading "pki" in args is accepted).
func runPKI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if len(args) == 0 || args[0] != "pki" {
		args = append([]string{"pki"}, args...)
	}
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommandFlow(t *testing.T) {
	tmp := t.TempDir()
	ca := filepath.Join(tmp, "ca")
	mustRun := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := runPKI(t, args...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, out, errs)
		}
		return out + errs
	}
	mustRun(0, "pki", "init", "--dir", ca, "--name", "Northern Consortium")
	if out := mustRun(1, "init", "--dir", ca); !strings.Contains(out, "refusing to overwrite") {
		t.Errorf("second init: %s", out)
	}

	// Before a coordinator exists, a site kit needs an explicit address.
	if out := mustRun(2, "issue", "--dir", ca, "--site", "st-marys", "--out", filepath.Join(tmp, "early")); !strings.Contains(out, "--coordinator-addr") {
		t.Errorf("site before coordinator: %s", out)
	}
	coordKit := filepath.Join(tmp, "coord-kit")
	mustRun(0, "issue", "--dir", ca, "--coordinator", "--host", "coord.example.org", "--host", "127.0.0.1", "--out", coordKit)
	siteKit := filepath.Join(tmp, "st-marys")
	out := mustRun(0, "issue", "--dir", ca, "--site", "st-marys", "--out", siteKit)
	if !strings.Contains(out, "site-agent run --config agent.yaml") {
		t.Errorf("issue message lacks the next step: %s", out)
	}
	adminKit := filepath.Join(tmp, "alice")
	mustRun(0, "issue", "--dir", ca, "--admin", "alice", "--out", adminKit, "--coordinator-addr", "10.1.2.3:9000", "--validity", "720h")

	// The site's agent.yaml, read as the site agent would.
	var agent struct {
		Site        string       `yaml:"site"`
		Coordinator string       `yaml:"coordinator"`
		TLS         pki.TLSFiles `yaml:"tls"`
		Data        struct {
			Dir string `yaml:"dir"`
		} `yaml:"data"`
		StateDir string       `yaml:"state_dir"`
		Audit    pki.KitAudit `yaml:"audit"`
	}
	readYAML(t, filepath.Join(siteKit, pki.AgentConfigFile), &agent)
	// The consortium's trust file names the coordinator's log key and the
	// site's witness key, the same keys the kits hold.
	trust, err := audit.ReadTrustFile(filepath.Join(ca, AuditTrustFile))
	if err != nil {
		t.Fatal(err)
	}
	coordKey, err := audit.ReadKeyFile(filepath.Join(coordKit, "audit-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	siteKey, err := audit.ReadKeyFile(filepath.Join(siteKit, agent.Audit.WitnessKey))
	if err != nil {
		t.Fatal(err)
	}
	if len(trust.Logs) != 1 || trust.Logs[0] != coordKey.Verifier() || agent.Audit.LogKey != coordKey.Verifier() ||
		len(trust.Witnesses) != 1 || trust.Witnesses[0] != siteKey.Verifier() || trust.Quorum != 1 {
		t.Errorf("trust file %+v; site pins %q; keys %s, %s", trust, agent.Audit.LogKey, coordKey.Verifier(), siteKey.Verifier())
	}
	if agent.Site != "st-marys" || agent.Coordinator != "coord.example.org:7443" ||
		agent.Data.Dir != "/var/lib/concord/images" || agent.StateDir != "/var/lib/concord/agent" {
		t.Errorf("agent.yaml = %+v", agent)
	}
	if _, err := agent.TLS.Resolve(siteKit).Client("coord.example.org"); err != nil {
		t.Errorf("the kit's own TLS files do not load: %v", err)
	}
	if st, err := os.Stat(filepath.Join(siteKit, pki.KitKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v %v", st.Mode(), err)
	}

	var ctl struct {
		Coordinator string       `yaml:"coordinator"`
		TLS         pki.TLSFiles `yaml:"tls"`
	}
	readYAML(t, filepath.Join(adminKit, pki.CtlConfigFile), &ctl)
	if ctl.Coordinator != "10.1.2.3:9000" || ctl.TLS != (pki.TLSFiles{CA: "ca.pem", Cert: "cert.pem", Key: "key.pem"}) {
		t.Errorf("concordctl.yaml = %+v", ctl)
	}

	var coord struct {
		Listen    string       `yaml:"listen"`
		TLS       pki.TLSFiles `yaml:"tls"`
		Inventory string       `yaml:"inventory"`
		StateDir  string       `yaml:"state_dir"`
		Audit     pki.KitAudit `yaml:"audit"`
	}
	readYAML(t, filepath.Join(coordKit, pki.CoordinatorConfigFile), &coord)
	if coord.Listen != ":7443" || coord.Inventory != filepath.Join(ca, pki.InventoryFile) {
		t.Errorf("coordinator.yaml = %+v", coord)
	}
	if _, err := coord.TLS.Resolve(coordKit).Server(); err != nil {
		t.Errorf("coordinator kit does not load: %v", err)
	}
	if _, err := pki.WatchInventory(coord.Inventory, nil); err != nil {
		t.Errorf("coordinator.yaml's inventory: %v", err)
	}

	// A kit folder is never overwritten.
	if out := mustRun(1, "issue", "--dir", ca, "--site", "st-marys", "--out", siteKit); !strings.Contains(out, "already holds") {
		t.Errorf("overwrite: %s", out)
	}

	// Renewal: a second kit for the same site, then the old one is revoked by serial.
	inv0, err := pki.LoadInventory(filepath.Join(ca, pki.InventoryFile))
	if err != nil {
		t.Fatal(err)
	}
	old := inv0.Active(pki.RoleSite, "st-marys", time.Now())[0].Serial
	out = mustRun(0, "issue", "--dir", ca, "--site", "st-marys", "--out", filepath.Join(tmp, "st-marys-2"))
	if !strings.Contains(out, "--serial "+old) {
		t.Errorf("renewal does not point at the old certificate %s: %s", old, out)
	}
	mustRun(2, "revoke", "--dir", ca, "--site", "st-marys", "--serial", old)
	mustRun(0, "revoke", "--dir", ca, "--serial", old)
	mustRun(1, "revoke", "--dir", ca, "--serial", "abc123")
	inv1, _ := pki.LoadInventory(filepath.Join(ca, pki.InventoryFile))
	if active := inv1.Active(pki.RoleSite, "st-marys", time.Now()); len(active) != 1 || active[0].Serial == old {
		t.Errorf("after revoking the old serial, active = %+v", active)
	}

	mustRun(0, "revoke", "--dir", ca, "--site", "st-marys")
	mustRun(1, "revoke", "--dir", ca, "--site", "st-marys")
	list := mustRun(0, "list", "--dir", ca)
	for _, want := range []string{"coordinator", "alice", "revoked", "active", "coord.example.org,127.0.0.1"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}
	var inv pki.Inventory
	if err := json.Unmarshal([]byte(mustRun(0, "list", "--dir", ca, "--json")), &inv); err != nil {
		t.Fatal(err)
	}
	// coordinator, st-marys, alice, st-marys renewed: the refused re-issue
	// into an existing kit folder recorded nothing.
	if len(inv.Certificates) != 4 {
		t.Errorf("inventory has %d certificates, want 4", len(inv.Certificates))
	}
}

// TestIssueForOneMachine issues the kits of a federation on one machine:
// the port set once, each agent with its own state_dir.
func TestIssueForOneMachine(t *testing.T) {
	tmp := t.TempDir()
	ca := filepath.Join(tmp, "ca")
	if code, _, errs := runPKI(t, "init", "--dir", ca); code != 0 {
		t.Fatal(errs)
	}
	const addr = "127.0.0.1:9443"
	coord := filepath.Join(tmp, "coordinator")
	if code, _, errs := runPKI(t, "issue", "--dir", ca, "--coordinator", "--host", "127.0.0.1", "--listen", addr, "--state-dir", "state", "--out", coord); code != 0 {
		t.Fatal(errs)
	}
	var c struct {
		Listen    string       `yaml:"listen"`
		TLS       pki.TLSFiles `yaml:"tls"`
		Inventory string       `yaml:"inventory"`
		StateDir  string       `yaml:"state_dir"`
		Audit     pki.KitAudit `yaml:"audit"`
	}
	readYAML(t, filepath.Join(coord, pki.CoordinatorConfigFile), &c)
	if c.Listen != addr || c.StateDir != "state" {
		t.Errorf("coordinator.yaml %+v", c)
	}
	for _, site := range []string{"st-marys", "riverside"} {
		kit := filepath.Join(tmp, site)
		if code, _, errs := runPKI(t, "issue", "--dir", ca, "--site", site, "--coordinator-addr", addr, "--state-dir", "state", "--data-dir", "/data/"+site, "--out", kit); code != 0 {
			t.Fatal(errs)
		}
		var a struct {
			Site        string       `yaml:"site"`
			Coordinator string       `yaml:"coordinator"`
			TLS         pki.TLSFiles `yaml:"tls"`
			Data        struct {
				Dir string `yaml:"dir"`
			} `yaml:"data"`
			StateDir string       `yaml:"state_dir"`
			Audit    pki.KitAudit `yaml:"audit"`
		}
		readYAML(t, filepath.Join(kit, pki.AgentConfigFile), &a)
		if a.Coordinator != addr || a.StateDir != "state" || a.Data.Dir != "/data/"+site {
			t.Errorf("%s agent.yaml %+v", site, a)
		}
	}
	// --json on issue and revoke, and the global --json on pki list.
	code, out, errs := runCtl("--json", "pki", "issue", "--dir", ca, "--auditor", "carol", "--coordinator-addr", addr, "--out", filepath.Join(tmp, "carol"))
	var issued map[string]any
	if err := json.Unmarshal([]byte(out), &issued); code != 0 || err != nil || issued["role"] != "auditor" || issued["serial"] == "" || issued["config_file"] != filepath.Join(tmp, "carol", pki.CtlConfigFile) {
		t.Errorf("pki issue --json: exit %d, %v, %v\n%s", code, err, issued, errs)
	}
	code, out, errs = runCtl("pki", "revoke", "--dir", ca, "--auditor", "carol", "--json")
	var revoked map[string]any
	if err := json.Unmarshal([]byte(out), &revoked); code != 0 || err != nil || revoked["revoked"] != true || revoked["name"] != "carol" {
		t.Errorf("pki revoke --json: exit %d, %v, %v\n%s", code, err, revoked, errs)
	}
	code, out, errs = runCtl("--json", "pki", "list", "--dir", ca)
	var inv pki.Inventory
	if err := json.Unmarshal([]byte(out), &inv); code != 0 || err != nil || len(inv.Certificates) != 4 {
		t.Errorf("concordctl --json pki list: exit %d, %v, %d certificates\n%s", code, err, len(inv.Certificates), errs)
	}
	for _, args := range [][]string{
		{"issue", "--dir", ca, "--site", "x", "--listen", addr, "--out", filepath.Join(tmp, "x")},
		{"issue", "--dir", ca, "--admin", "x", "--data-dir", "/d", "--out", filepath.Join(tmp, "y")},
	} {
		if code, _, _ := runPKI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestCommandUsageErrors(t *testing.T) {
	ca := t.TempDir()
	if err := pki.InitCA(ca, ""); err != nil {
		t.Fatal(err)
	}
	tests := [][]string{
		{},
		{"frobnicate"},
		{"init"},
		{"issue", "--dir", ca, "--out", "x"},
		{"issue", "--dir", ca, "--site", "a", "--admin", "b", "--out", "x"},
		{"issue", "--dir", ca, "--site", "a"},
		{"issue", "--dir", ca, "--site", "a", "--out", "x", "--coordinator-addr", "nohost"},
		{"issue", "--dir", ca, "--site", "a", "--out", "x", "--validity", "-1h"},
		{"issue", "--bogus"},
		{"list", "extra"},
		{"revoke", "--dir", ca},
	}
	for _, args := range tests {
		code, out, errs := runPKI(t, args...)
		if code != 2 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 and a message", args, code, errs, out)
		}
	}
	if code, _, _ := runPKI(t, "issue", "-h"); code != 0 {
		t.Errorf("issue -h: exit %d", code)
	}
	if code, _, errs := runPKI(t, "issue", "--dir", ca, "--site", "Bad Name", "--out", filepath.Join(ca, "k"), "--coordinator-addr", "h:1"); code != 1 || !strings.Contains(errs, "lower-case") {
		t.Errorf("bad name: exit %d: %s", code, errs)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
}
