package composetest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/tools/internal/testrepo"
	"github.com/concord-fl/concord/tools/ociimage"
)

type service struct {
	Image       string         `yaml:"image"`
	Command     []string       `yaml:"command"`
	Ports       []string       `yaml:"ports"`
	Volumes     []string       `yaml:"volumes"`
	User        string         `yaml:"user"`
	ReadOnly    bool           `yaml:"read_only"`
	CapDrop     []string       `yaml:"cap_drop"`
	SecurityOpt []string       `yaml:"security_opt"`
	DependsOn   map[string]any `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

// kitConfig is the part of agent.yaml and coordinator.yaml compose relies on.
type kitConfig struct {
	Site              string `yaml:"site"`
	Coordinator       string `yaml:"coordinator"`
	Listen            string `yaml:"listen"`
	StateDir          string `yaml:"state_dir"`
	MetricsListen     string `yaml:"metrics_listen"`
	Inventory         string `yaml:"inventory"`
	KeyPassphraseFile string `yaml:"key_passphrase_file"`
	Data              struct {
		Dir string `yaml:"dir"`
	} `yaml:"data"`
}

func TestComposeConsortium(t *testing.T) {
	root := testrepo.Root(t)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}

	// Real kits, made by kits.sh with this checkout's concordctl.
	bin := t.TempDir()
	testrepo.Build(t, bin, "v0.0.0-compose", "concordctl")
	dir := t.TempDir()
	testrepo.Run(t, dir, nil, filepath.Join(root, "deploy", "compose", "kits.sh"), filepath.Join(bin, "concordctl"), dir)

	var agents []string
	usedVolumes := map[string]string{}
	for name, s := range cf.Services {
		where := "service " + name
		binary := strings.TrimPrefix(strings.SplitN(s.Image, ":", 2)[0], "concord/")
		if want := "concord/" + binary + ":${CONCORD_VERSION:?"; !strings.HasPrefix(s.Image, want) {
			t.Errorf("%s: image %q, want %s...} (the release the images were built for)", where, s.Image, want)
		}
		if s.User != fmt.Sprintf("%d:%d", ociimage.UID, ociimage.GID) || !s.ReadOnly || len(s.CapDrop) != 1 || s.CapDrop[0] != "ALL" ||
			len(s.SecurityOpt) != 1 || s.SecurityOpt[0] != "no-new-privileges:true" {
			t.Errorf("%s: user %q read_only %v cap_drop %v security_opt %v: want the image's non-root user, a read-only root, no capabilities, no new privileges",
				where, s.User, s.ReadOnly, s.CapDrop, s.SecurityOpt)
		}
		var configDir, kitDir, configFile string
		switch binary {
		case "coordinator":
			configDir, configFile, kitDir = "/etc/concord/coordinator", "coordinator.yaml", "coordinator"
		case "site-agent":
			configDir, configFile, kitDir = "/etc/concord/agent", "agent.yaml", name
			agents = append(agents, name)
			if c, _ := s.DependsOn["coordinator"].(map[string]any); c["condition"] != "service_healthy" {
				t.Errorf("%s: depends_on coordinator %v, want condition service_healthy", where, s.DependsOn["coordinator"])
			}
		default:
			t.Errorf("%s: image %q is not a Concord daemon", where, s.Image)
			continue
		}
		if got := strings.Join(s.Command, " "); !strings.Contains(got, "--config "+configDir+"/"+configFile) {
			t.Errorf("%s: command %q does not read %s/%s", where, got, configDir, configFile)
		}
		mounts := map[string]string{}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("%s: volume %q is not SOURCE:TARGET", where, v)
				continue
			}
			mounts[parts[1]] = v
			if !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
				if other, ok := usedVolumes[parts[0]]; ok {
					t.Errorf("%s: state volume %s is also used by %s: one daemon per state", where, parts[0], other)
				}
				usedVolumes[parts[0]] = name
			}
		}
		kitMount := mounts[configDir]
		if kitMount != "./kits/"+kitDir+":"+configDir+":ro" {
			t.Errorf("%s: kit mount %q, want ./kits/%s:%s:ro", where, kitMount, kitDir, configDir)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "kits", kitDir, configFile))
		if err != nil {
			t.Errorf("%s: kits.sh made no %s: %v", where, configFile, err)
			continue
		}
		var kc kitConfig
		if err := yaml.Unmarshal(raw, &kc); err != nil {
			t.Fatalf("%s: %v", configFile, err)
		}
		if m := mounts[kc.StateDir]; m == "" || strings.HasSuffix(m, ":ro") {
			t.Errorf("%s: the kit's state_dir %s is not a writable volume (mounts %v)", where, kc.StateDir, s.Volumes)
		}
		port := kc.MetricsListen[strings.LastIndex(kc.MetricsListen, ":")+1:]
		wantProbe := []string{"CMD", path.Join(ociimage.BinDir, ociimage.ProbeName), "http://127.0.0.1:" + port + "/healthz"}
		if strings.Join(s.Healthcheck.Test, " ") != strings.Join(wantProbe, " ") {
			t.Errorf("%s: healthcheck %q, want %q (the metrics address in its config is %q)", where, s.Healthcheck.Test, wantProbe, kc.MetricsListen)
		}
		if binary == "site-agent" {
			if kc.KeyPassphraseFile == "" {
				t.Errorf("%s: its agent.yaml has no key_passphrase_file: the agent refuses to start without one", where)
			} else if fi, err := os.Stat(filepath.Join(dir, "kits", kitDir, kc.KeyPassphraseFile)); err != nil || fi.Mode().Perm()&0o077 != 0 || fi.Size() < 16 {
				t.Errorf("%s: passphrase file: %v; want one only its owner reads, of 16 bytes or more", where, err)
			}
			if kc.Site != name {
				t.Errorf("%s: its kit is for site %q", where, kc.Site)
			}
			host, cport, _ := strings.Cut(kc.Coordinator, ":")
			if _, ok := cf.Services[host]; !ok || !contains(cf.Services[host].Ports, cport+":"+cport) {
				t.Errorf("%s: kit dials %s, which is not a compose service publishing that port", where, kc.Coordinator)
			}
			if m := mounts[kc.Data.Dir]; m != "./data/"+name+":"+kc.Data.Dir+":ro" {
				t.Errorf("%s: data mount %q, want ./data/%s:%s:ro", where, m, name, kc.Data.Dir)
			}
		} else {
			if filepath.IsAbs(kc.Inventory) {
				t.Errorf("coordinator: inventory %s is a path on the CA's host, not in the kit", kc.Inventory)
			} else if _, err := os.Stat(filepath.Join(dir, "kits", kitDir, kc.Inventory)); err != nil {
				t.Errorf("coordinator: inventory: %v", err)
			}
		}
	}
	sort.Strings(agents)
	if strings.Join(agents, " ") != "elm-park marlow-bay st-marys" {
		t.Errorf("site agents %v, want the three hospitals", agents)
	}
	for v := range cf.Volumes {
		if _, ok := usedVolumes[v]; !ok {
			t.Errorf("volume %s is declared but no service mounts it", v)
		}
	}
	for v, s := range usedVolumes {
		if _, ok := cf.Volumes[v]; !ok {
			t.Errorf("service %s mounts volume %s, which is not declared", s, v)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
