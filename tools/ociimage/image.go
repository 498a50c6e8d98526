// Package ociimage builds Concord's container images without a container
// daemon: one layer that holds the static binary, the CA bundle and the
// passwd/group entries of the non-root user, on an empty base.
//
// Design choices:
//   - No base image. The binaries are static (CGO_ENABLED=0), so a distro
//     layer would only add packages to patch; the image is the binary, the
//     CA certificates it needs for outbound TLS, and who it runs as.
//   - The image has no shell or curl, so compose and podman health checks
//     need a probe of their own: concord-healthcheck (tools/cmd), a static
//     binary that GETs one loopback URL. Kubernetes probes need none.
//   - The user is 65532:65532 ("nonroot", the UID distroless uses), set by
//     number so that Kubernetes' runAsNonRoot can check it without a passwd
//     lookup; the passwd entry is there for tools that print user names.
//   - Reproducible: every file has the same time (Spec.Created) and owner,
//     entries are sorted, so the same inputs give the same digest.
//   - Output is an OCI image layout in a tar file (an "oci-archive"), which
//     podman, skopeo and crane load without a registry.
package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID the images run as.
const (
	UID = 65532
	GID = 65532
)

// BinDir is where the binary goes in the image.
const BinDir = "/usr/local/bin"

// ProbeName is the health probe's file name in BinDir.
const ProbeName = "concord-healthcheck"

// StateDir is the state folder made in the image, owned by UID, so that a
// fresh volume mounted there is writable by the daemon.
const StateDir = "/var/lib/concord"

// Bounds on inputs: a Concord binary is tens of MiB; anything far larger is
// a wrong path, not a binary.
const (
	maxBinary = 512 << 20
	maxCAFile = 4 << 20
)

// Spec says what goes in one image.
type Spec struct {
	Name        string   // binary name: coordinator, site-agent
	Binary      string   // path of the static binary on this machine
	Probe       string   // path of the static concord-healthcheck binary, optional
	CACerts     string   // path of a PEM CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt)
	Version     string   // org.opencontainers.image.version, and the tag
	Revision    string   // git commit, optional
	Cmd         []string // default arguments after the entrypoint
	Ports       []string // exposed ports, e.g. "7443/tcp"
	Created     time.Time
	Description string // org.opencontainers.image.description
}

// Build returns the image described by s.
func Build(s Spec) (v1.Image, error) {
	if s.Name == "" || strings.ContainsAny(s.Name, "/ \t") {
		return nil, fmt.Errorf("image name %q: want a plain binary name like site-agent", s.Name)
	}
	if s.Version == "" {
		return nil, errors.New("image " + s.Name + ": version is required (it becomes the tag and a label)")
	}
	bin, err := readBounded(s.Binary, maxBinary, "binary")
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("binary %s: not an ELF executable", s.Binary)
	}
	ca, err := readBounded(s.CACerts, maxCAFile, "CA bundle")
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", s.CACerts)
	}
	created := s.Created.UTC()
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID))},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "etc/concord/", mode: 0o755, dir: true},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, owned: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(path.Join(BinDir, s.Name), "/"), mode: 0o755, data: bin},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(StateDir, "/") + "/", mode: 0o700, dir: true, owned: true},
	}
	if s.Probe != "" {
		probe, err := readBounded(s.Probe, maxBinary, "health probe")
		if err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(probe, []byte("\x7fELF")) {
			return nil, fmt.Errorf("health probe %s: not an ELF executable", s.Probe)
		}
		files = append(files, file{name: strings.TrimPrefix(path.Join(BinDir, ProbeName), "/"), mode: 0o755, data: probe})
	}
	tarData, err := tarOf(files, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image %s: layer: %w", s.Name, err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{path.Join(BinDir, s.Name)},
		Cmd:        s.Cmd,
		WorkingDir: StateDir,
		Env:        []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "HOME=/home/nonroot"},
		Labels:     Labels(s),
	}
	if len(s.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	cf.History = []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "concord-image: " + s.Name + " " + s.Version}}
	return mutate.ConfigFile(img, cf)
}

// Labels are the OCI annotations every image carries.
func Labels(s Spec) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "concord-" + s.Name,
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.source":      "https://github.com/concord-fl/concord",
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
	}
	if s.Revision != "" {
		l["org.opencontainers.image.revision"] = s.Revision
	}
	return l
}

type file struct {
	name  string
	mode  int64
	data  []byte
	dir   bool
	owned bool // owned by UID:GID instead of root
}

func tarOf(files []file, mtime time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		if f.owned {
			h.Uid, h.Gid, h.Uname, h.Gname = UID, GID, "nonroot", "nonroot"
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func readBounded(name string, limit int64, what string) ([]byte, error) {
	if name == "" {
		return nil, fmt.Errorf("%s: no path given", what)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s %s: larger than %d MiB", what, name, limit>>20)
	}
	return data, nil
}
