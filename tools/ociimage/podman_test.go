package ociimage

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/concord-fl/concord/tools/internal/testrepo"
)

// podmanArgs run podman with storage of its own under dir, so that the test
// neither sees nor changes the machine's images. The flags are what this
// sandbox (cgroup v1, no CAP_SYS_RESOURCE) needs: vfs storage, cgroupfs,
// runc (crun refuses hybrid cgroups), rlimits below the hard limits and no
// network.
func podmanArgs(dir string) []string {
	return []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--runtime", "runc"}
}

var runFlags = []string{"run", "--rm", "--network", "none", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}

// needPodman skips when podman cannot run here, unless
// CONCORD_REQUIRE_PODMAN=1 (.ci/run sets it where it installs podman and
// runc): then a podman that does not work fails the test.
func needPodman(t *testing.T) {
	t.Helper()
	var missing string
	for _, b := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = b + " is not installed"
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CONCORD_REQUIRE_PODMAN") == "1" {
		t.Fatalf("%s but CONCORD_REQUIRE_PODMAN=1 (apt-get install podman runc)", missing)
	}
	t.Skipf("%s; set CONCORD_REQUIRE_PODMAN=1 to make this a failure", missing)
}

// TestPodmanRunsImages loads the built images into podman and runs them:
// the stamped version, the agent's help, and its clear error without a kit.
func TestPodmanRunsImages(t *testing.T) {
	needPodman(t)
	if testing.Short() {
		t.Skip("loads two images into podman")
	}
	bin := binaries(t)
	ca := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(ca); err != nil {
		ca = caBundle(t)
	}
	dir := t.TempDir()
	store, err := os.MkdirTemp("", "concord-podman-")
	if err != nil {
		t.Fatal(err)
	}
	pa := podmanArgs(store)
	t.Cleanup(func() {
		exec.Command("podman", append(pa, "system", "reset", "--force")...).Run()
		os.RemoveAll(store)
	})
	podman := func(args ...string) (string, error) {
		cmd := exec.Command("podman", append(append([]string{}, pa...), args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, s := range Daemons(bin, ca, testVersion, "", time.Unix(0, 0)) {
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, ArchiveName(s))
		if err := WriteArchive(file, img, Ref(s), time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		if out, err := podman("load", "-i", file); err != nil || !strings.Contains(out, "Loaded image: localhost/"+Ref(s)) {
			t.Fatalf("podman load %s: %v\n%s", file, err, out)
		}
		out, err := podman("inspect", "--format", "{{.Config.User}}", Ref(s))
		if err != nil || strings.TrimSpace(out) != "65532:65532" {
			t.Errorf("podman inspect %s: user %q, %v", Ref(s), out, err)
		}
	}
	for _, tc := range []struct {
		args     []string
		wantOK   bool
		contains string
	}{
		{[]string{"concord/coordinator:" + testVersion, "--version"}, true, testVersion},
		{[]string{"concord/site-agent:" + testVersion, "version"}, true, "site-agent " + testVersion},
		{[]string{"concord/site-agent:" + testVersion, "run", "--help"}, true, "agent config file"},
		// The default command, with no kit mounted: a clear error that says what is missing.
		{[]string{"concord/site-agent:" + testVersion}, false, "/etc/concord/agent/agent.yaml: no such file or directory (it comes in the site's startup kit)"},
	} {
		out, err := podman(append(append([]string{}, runFlags...), tc.args...)...)
		if (err == nil) != tc.wantOK || !strings.Contains(out, tc.contains) {
			t.Errorf("podman run %v: err %v, want success %v and output with %q:\n%s", tc.args, err, tc.wantOK, tc.contains, out)
		}
	}
	runCoordinator(t, podman)
	runFederation(t, podman)
}

// runCoordinator starts the coordinator image as compose.yaml does (kit
// from deploy/compose/kits.sh mounted read only, a state volume, read-only
// root, no capabilities) and waits for its health probe to pass.
func runCoordinator(t *testing.T, podman func(args ...string) (string, error)) {
	root := testrepo.Root(t)
	bin := t.TempDir()
	testrepo.Build(t, bin, testVersion, "concordctl")
	kits := t.TempDir()
	testrepo.Run(t, kits, nil, filepath.Join(root, "deploy", "compose", "kits.sh"), filepath.Join(bin, "concordctl"), kits)
	args := append(append([]string{}, runFlags...),
		"-d", "--name", "concord-coordinator-test", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--tmpfs", "/tmp",
		"-v", filepath.Join(kits, "kits", "coordinator")+":/etc/concord/coordinator:ro",
		"-v", "coordinator-state:/var/lib/concord/coordinator",
		"concord/coordinator:"+testVersion)
	if out, err := podman(args...); err != nil {
		t.Fatalf("podman run coordinator: %v\n%s", err, out)
	}
	defer podman("rm", "-f", "concord-coordinator-test")
	probe := []string{"exec", "concord-coordinator-test", BinDir + "/" + ProbeName, "http://127.0.0.1:9100/healthz"}
	var out string
	var err error
	for i := 0; i < 50; i++ {
		if out, err = podman(probe...); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		logs, _ := podman("logs", "concord-coordinator-test")
		t.Fatalf("the coordinator in its image never became healthy: %v\n%s\nlogs:\n%s", err, out, logs)
	}
	// The database is in the volume, written by the non-root user.
	mp, err := podman("volume", "inspect", "--format", "{{.Mountpoint}}", "coordinator-state")
	if err != nil {
		t.Fatalf("podman volume inspect: %v %s", err, mp)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(mp), "coordinator.db")); err != nil {
		t.Errorf("no coordinator.db in the state volume: %v", err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != UID {
		t.Errorf("coordinator.db owned by UID %d, want %d", st.Uid, UID)
	}
	if out, err := podman("exec", "concord-coordinator-test", BinDir+"/"+ProbeName, "http://127.0.0.1:9199/healthz"); err == nil || !strings.Contains(out, "connection refused") {
		t.Errorf("probe of a closed port: %v %s, want a failure that says connection refused", err, out)
	}
	if out, err := podman("exec", "concord-coordinator-test", BinDir+"/"+ProbeName, "http://10.0.0.1:9100/healthz"); err == nil || !strings.Contains(out, "only loopback") {
		t.Errorf("probe of another host: %v %s, want a refusal", err, out)
	}
}

// runFederation runs a coordinator and a site agent from their images, the
// agent in the coordinator's network namespace (this sandbox has no
// container networking), and waits for the coordinator to log the site's
// mTLS connection.
func runFederation(t *testing.T, podman func(args ...string) (string, error)) {
	bin := t.TempDir()
	testrepo.Build(t, bin, testVersion, "concordctl")
	dir := t.TempDir()
	ctl := filepath.Join(bin, "concordctl")
	testrepo.Run(t, dir, nil, ctl, "pki", "init", "--dir", "ca")
	testrepo.Run(t, dir, nil, ctl, "pki", "issue", "--dir", "ca", "--coordinator", "--host", "127.0.0.1", "--out", "coordinator",
		"--listen", "127.0.0.1:7443", "--state-dir", "/var/lib/concord/coordinator")
	testrepo.Run(t, dir, nil, ctl, "pki", "issue", "--dir", "ca", "--site", "st-marys", "--out", "st-marys",
		"--coordinator-addr", "127.0.0.1:7443", "--data-dir", "/data", "--state-dir", "/var/lib/concord/agent")
	testrepo.Run(t, dir, nil, "cp", filepath.Join(dir, "ca", "inventory.json"), filepath.Join(dir, "coordinator", "inventory.json"))
	testrepo.Run(t, dir, nil, "sed", "-i", "s|^inventory: .*|inventory: inventory.json|", filepath.Join(dir, "coordinator", "coordinator.yaml"))
	appendLine(t, filepath.Join(dir, "coordinator", "coordinator.yaml"), `metrics_listen: "127.0.0.1:9100"`)
	appendLine(t, filepath.Join(dir, "st-marys", "agent.yaml"), "key_passphrase_file: passphrase\nmetrics_listen: \"127.0.0.1:9101\"")
	if err := os.WriteFile(filepath.Join(dir, "st-marys", "passphrase"), []byte("podman-test-passphrase"), 0o400); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"coordinator", "st-marys"} {
		testrepo.Run(t, dir, nil, "chown", "-R", fmt.Sprintf("%d:%d", UID, GID), filepath.Join(dir, d))
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "normal"), 0o755); err != nil {
		t.Fatal(err)
	}
	hardening := []string{"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--tmpfs", "/tmp",
		"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}
	run := func(args ...string) {
		t.Helper()
		if out, err := podman(append([]string{"run", "-d"}, append(hardening, args...)...)...); err != nil {
			t.Fatalf("podman run %v: %v\n%s", args, err, out)
		}
	}
	run("--name", "fed-coordinator", "--network", "none",
		"-v", filepath.Join(dir, "coordinator")+":/etc/concord/coordinator:ro", "-v", "fed-coordinator-state:/var/lib/concord/coordinator",
		"concord/coordinator:"+testVersion)
	defer podman("rm", "-f", "fed-coordinator")
	run("--name", "fed-st-marys", "--network", "container:fed-coordinator",
		"-v", filepath.Join(dir, "st-marys")+":/etc/concord/agent:ro", "-v", data+":/data:ro", "-v", "fed-st-marys-state:/var/lib/concord/agent",
		"concord/site-agent:"+testVersion)
	defer podman("rm", "-f", "fed-st-marys")
	var logs string
	for i := 0; i < 150; i++ {
		logs, _ = podman("logs", "fed-coordinator")
		if strings.Contains(logs, `"event":"site.connected"`) && strings.Contains(logs, `"site":"st-marys"`) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs, `"event":"site.connected"`) {
		agentLogs, _ := podman("logs", "fed-st-marys")
		t.Fatalf("the site agent in its image never connected to the coordinator in its image\ncoordinator:\n%s\nagent:\n%s", logs, agentLogs)
	}
	if out, err := podman("exec", "fed-st-marys", BinDir+"/"+ProbeName, "http://127.0.0.1:9101/healthz"); err != nil {
		t.Errorf("the agent's health probe: %v %s", err, out)
	}
}

func appendLine(t *testing.T, p, line string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Fatal(err)
	}
}
