package ociimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/concord-fl/concord/tools/internal/testrepo"
)

const testVersion = "v9.9.9-test"

var (
	binOnce sync.Once
	binDir  string
)

// binaries builds the real coordinator and site-agent once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "concord-image-bin-")
		if err != nil {
			t.Fatal(err)
		}
		testrepo.Build(t, dir, testVersion, "coordinator", "site-agent")
		testrepo.BuildProbe(t, dir)
		binDir = dir
	})
	if binDir == "" {
		t.Fatal("building the binaries failed in an earlier test")
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func caBundle(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDaemonImages(t *testing.T) {
	bin := binaries(t)
	ca := caBundle(t)
	created := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	for _, s := range Daemons(bin, ca, testVersion, "abc123", created) {
		t.Run(s.Name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), ArchiveName(s))
			img, err := Build(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteArchive(out, img, Ref(s), created); err != nil {
				t.Fatal(err)
			}
			got := readArchive(t, out, Ref(s))
			cf, err := got.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cf.Config
			if c.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532 (non-root by number)", c.User)
			}
			if want := "/usr/local/bin/" + s.Name; len(c.Entrypoint) != 1 || c.Entrypoint[0] != want {
				t.Errorf("entrypoint %q, want [%s]", c.Entrypoint, want)
			}
			if strings.Join(c.Cmd, " ") != strings.Join(s.Cmd, " ") {
				t.Errorf("cmd %q, want %q", c.Cmd, s.Cmd)
			}
			if c.Labels["org.opencontainers.image.version"] != testVersion || c.Labels["org.opencontainers.image.revision"] != "abc123" {
				t.Errorf("labels %v lack version %s and revision", c.Labels, testVersion)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(created) {
				t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
			}
			layers, err := got.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 1 {
				t.Fatalf("%d layers, want 1 (no base image)", len(layers))
			}
			entries := layerEntries(t, layers[0])
			var names []string
			for n := range entries {
				names = append(names, n)
			}
			sort.Strings(names)
			want := []string{"etc/", "etc/concord/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
				"home/", "home/nonroot/", "tmp/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/" + ProbeName, "usr/local/bin/" + s.Name, "var/", "var/lib/", "var/lib/concord/"}
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("layer holds\n%v\nwant\n%v", names, want)
			}
			binData, err := os.ReadFile(filepath.Join(bin, s.Name))
			if err != nil {
				t.Fatal(err)
			}
			if e := entries["usr/local/bin/"+s.Name]; !bytes.Equal(e.data, binData) || e.h.Mode != 0o755 || e.h.Uid != 0 {
				t.Errorf("binary in the image: %d bytes mode %o uid %d; want the %d bytes built, 0755, root-owned (not writable by the daemon)",
					len(e.data), e.h.Mode, e.h.Uid, len(binData))
			}
			if e := entries["var/lib/concord/"]; e.h.Uid != UID || e.h.Gid != GID {
				t.Errorf("state folder owned by %d:%d, want %d:%d", e.h.Uid, e.h.Gid, UID, GID)
			}
			if !strings.Contains(string(entries["etc/passwd"].data), "nonroot:x:65532:65532:") {
				t.Errorf("passwd lacks the nonroot user:\n%s", entries["etc/passwd"].data)
			}
		})
	}
}

// The same inputs give the same image digest and the same archive bytes.
func TestReproducible(t *testing.T) {
	bin := binaries(t)
	ca := caBundle(t)
	s := Daemons(bin, ca, testVersion, "", time.Unix(0, 0))[1]
	var digests []v1.Hash
	var archives [][]byte
	for i := 0; i < 2; i++ {
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "img.tar")
		if err := WriteArchive(out, img, Ref(s), time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		digests, archives = append(digests, d), append(archives, data)
	}
	if digests[0] != digests[1] || !bytes.Equal(archives[0], archives[1]) {
		t.Errorf("two builds differ: digests %v, archives equal %v", digests, bytes.Equal(archives[0], archives[1]))
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "coordinator")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ca := caBundle(t)
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    Spec
		want string
	}{
		{"not ELF", Spec{Name: "coordinator", Binary: script, CACerts: ca, Version: "v1"}, "not an ELF executable"},
		{"no version", Spec{Name: "coordinator", Binary: script, CACerts: ca}, "version is required"},
		{"missing binary", Spec{Name: "coordinator", Binary: filepath.Join(dir, "nope"), CACerts: ca, Version: "v1"}, "no such file"},
		{"bad name", Spec{Name: "../x", Binary: script, CACerts: ca, Version: "v1"}, "plain binary name"},
		{"CA not PEM", Spec{Name: "coordinator", Binary: binaries(t) + "/coordinator", CACerts: notPEM, Version: "v1"}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// readArchive unpacks an oci-archive and returns the image named ref.
func readArchive(t *testing.T, file, ref string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Annotations[RefAnnotation] != ref {
		t.Fatalf("index %+v: want one image named %s", m.Manifests, ref)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type entry struct {
	h    *tar.Header
	data []byte
}

func layerEntries(t *testing.T, l v1.Layer) map[string]entry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = entry{h: h, data: data}
	}
}
