package chartcheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/concord-fl/concord/tools/internal/testrepo"
)

func chartDir(t *testing.T, name string) string {
	return filepath.Join(testrepo.Root(t), "deploy", "helm", name)
}

func ciValues(t *testing.T, chart string) map[string]any {
	t.Helper()
	v, err := ValuesFile(filepath.Join(chartDir(t, chart), "ci", "test-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// with returns a copy of vals with path (dot-separated) set to v.
func with(vals map[string]any, path string, v any) map[string]any {
	data, _ := yaml.Marshal(vals)
	var out map[string]any
	yaml.Unmarshal(data, &out)
	m := out
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
	return out
}

func render(t *testing.T, chart string, vals map[string]any) []Object {
	t.Helper()
	objs, err := Render(chartDir(t, chart), vals)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestChartsLintRenderCheck(t *testing.T) {
	for chart, kinds := range map[string]map[string]int{
		"concord-coordinator": {"ConfigMap": 1, "Deployment": 1, "PersistentVolumeClaim": 1, "Service": 2, "ServiceMonitor": 1},
		"concord-site-agent":  {"ConfigMap": 1, "Deployment": 1, "PersistentVolumeClaim": 1, "Service": 1, "ServiceMonitor": 1},
	} {
		t.Run(chart, func(t *testing.T) {
			vals := ciValues(t, chart)
			if err := Lint(chartDir(t, chart), vals); err != nil {
				t.Fatal(err)
			}
			objs := render(t, chart, vals)
			if err := Check(objs); err != nil {
				t.Error(err)
			}
			got := Kinds(objs)
			for k, n := range kinds {
				if got[k] != n {
					t.Errorf("%d %s rendered, want %d (all: %v)", got[k], k, n, got)
				}
			}
			pvc := Find(objs, "PersistentVolumeClaim", "-state")
			if pvc == nil || dig(pvc.Doc, "metadata", "annotations", "helm.sh/resource-policy") != "keep" {
				t.Errorf("the state PVC is missing or not kept when the release is deleted")
			}
			dep := Find(objs, "Deployment", chart)
			if dig(dep.Doc, "spec", "strategy", "type") != "Recreate" || dig(dep.Doc, "spec", "replicas") != float64(1) {
				t.Errorf("deployment: want one replica and the Recreate strategy (one daemon per state database)")
			}
		})
	}
}

// The rendered daemon configs use only keys the daemons know: the real
// binaries load them and stop at the kit files, which are not here.
func TestRenderedConfigsLoad(t *testing.T) {
	bin := t.TempDir()
	testrepo.Build(t, bin, "v0.0.0-chart", "coordinator", "site-agent")
	for _, tc := range []struct{ chart, file, bin, want string }{
		{"concord-site-agent", "agent.yaml", "site-agent", "/etc/concord/kit/cert.pem"},
		{"concord-coordinator", "coordinator.yaml", "coordinator", "/etc/concord/kit/ca.pem"},
	} {
		objs := render(t, tc.chart, ciValues(t, tc.chart))
		cm := Find(objs, "ConfigMap", tc.chart)
		text, _ := dig(cm.Doc, "data", tc.file).(string)
		p := filepath.Join(t.TempDir(), tc.file)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"--config", p}
		if tc.bin == "site-agent" {
			args = append([]string{"run"}, args...)
		}
		out, err := exec.Command(filepath.Join(bin, tc.bin), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "unknown key") {
			t.Errorf("%s on the rendered %s: %v, want a stop at %s:\n%s\n%s", tc.bin, tc.file, err, tc.want, out, text)
		}
	}
}

func TestSiteAgentGPUTrainerSidecar(t *testing.T) {
	objs := render(t, "concord-site-agent", ciValues(t, "concord-site-agent"))
	dep := Find(objs, "Deployment", "concord-site-agent")
	containers, _ := dig(dep.Doc, "spec", "template", "spec", "containers").([]any)
	var trainer map[string]any
	for _, c := range containers {
		if cm := c.(map[string]any); cm["name"] == "trainer" {
			trainer = cm
		}
	}
	if trainer == nil {
		t.Fatalf("no trainer container with trainer.enabled")
	}
	if dig(trainer, "resources", "limits", "nvidia.com/gpu") != float64(1) {
		t.Errorf("trainer limits %v: want nvidia.com/gpu: 1", dig(trainer, "resources", "limits"))
	}
	if cmd := strings.Join(toStrings(trainer["command"]), " "); !strings.Contains(cmd, "--listen 127.0.0.1:50061") {
		t.Errorf("trainer command %q: want it on loopback (no TLS inside the pod)", cmd)
	}
	cm := Find(objs, "ConfigMap", "concord-site-agent")
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(dig(cm.Doc, "data", "agent.yaml").(string)), &cfg); err != nil {
		t.Fatal(err)
	}
	if dig(cfg, "trainer", "external") != "127.0.0.1:50061" || dig(cfg, "trainer", "dataset") != nil {
		t.Errorf("agent.yaml trainer %v: want the sidecar's address and no dataset (the agent sends shards)", cfg["trainer"])
	}
	if cmd := strings.Join(toStrings(trainer["command"]), " "); !strings.Contains(cmd, "--shard-cache /cache --cache-bytes 17179869184") {
		t.Errorf("trainer command %q: want the shard cache and its bound", cmd)
	}
	if strings.Contains(fmt.Sprint(trainer["volumeMounts"]), "/data") {
		t.Errorf("trainer mounts %v: the trainer must not see the site's data folder", trainer["volumeMounts"])
	}
	if dig(cfg, "privacy", "budget", "epsilon") != float64(8) {
		t.Errorf("agent.yaml privacy %v: the chart's config values are not passed on", cfg["privacy"])
	}

	off := render(t, "concord-site-agent", with(ciValues(t, "concord-site-agent"), "trainer.enabled", false))
	if c, _ := dig(Find(off, "Deployment", "concord-site-agent").Doc, "spec", "template", "spec", "containers").([]any); len(c) != 1 {
		t.Errorf("%d containers with trainer.enabled=false, want 1", len(c))
	}
}

func TestValuesSwitches(t *testing.T) {
	vals := with(ciValues(t, "concord-site-agent"), "metrics.serviceMonitor.enabled", false)
	vals = with(vals, "persistence.existingClaim", "agent-state-2024")
	objs := render(t, "concord-site-agent", vals)
	if k := Kinds(objs); k["ServiceMonitor"] != 0 || k["PersistentVolumeClaim"] != 0 {
		t.Errorf("kinds %v: want no ServiceMonitor when disabled and no PVC with an existing claim", k)
	}
	vols, _ := dig(Find(objs, "Deployment", "concord-site-agent").Doc, "spec", "template", "spec", "volumes").([]any)
	found := false
	for _, v := range vols {
		if dig(v, "persistentVolumeClaim", "claimName") == "agent-state-2024" {
			found = true
		}
	}
	if !found {
		t.Errorf("the existing claim is not mounted: %v", vols)
	}
}

// Missing required values are refused with the value's name and what to put there.
func TestRequiredValues(t *testing.T) {
	for _, tc := range []struct {
		chart, path, want string
	}{
		{"concord-site-agent", "kit.secretName", "kit.secretName: the Secret with the site's cert.pem"},
		{"concord-site-agent", "site", "site: the site's name as in its certificate"},
		{"concord-site-agent", "trainer.image", "trainer.image: your build of deploy/trainer"},
		{"concord-site-agent", "data.existingClaim", "data: set data.existingClaim or data.hostPath"},
		{"concord-coordinator", "consortium", "consortium: the consortium's name"},
	} {
		_, err := Render(chartDir(t, tc.chart), with(ciValues(t, tc.chart), tc.path, ""))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s without %s: %v, want an error with %q", tc.chart, tc.path, err, tc.want)
		}
	}
}

// Check catches a pod that would run as root or escalate.
func TestCheckCatchesRoot(t *testing.T) {
	vals := with(ciValues(t, "concord-coordinator"), "podSecurityContext.runAsNonRoot", false)
	vals = with(vals, "securityContext.allowPrivilegeEscalation", true)
	err := Check(render(t, "concord-coordinator", vals))
	if err == nil || !strings.Contains(err.Error(), "runAsNonRoot is not true") || !strings.Contains(err.Error(), "allowPrivilegeEscalation is not false") {
		t.Errorf("Check: %v, want both findings", err)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i], _ = x.(string)
	}
	return out
}
