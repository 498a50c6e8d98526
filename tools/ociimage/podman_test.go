package ociimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
}
