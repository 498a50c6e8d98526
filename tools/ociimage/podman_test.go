package ociimage

import (
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
