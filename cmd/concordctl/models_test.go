package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// registryFixture is a coordinator key, the trust file listing it, and
// signed versions built with the registry's own functions.
type registryFixture struct {
	key       *audit.Key
	trustFile string
	versions  map[string]signedVersion
}

type signedVersion struct {
	signed, weights, layout []byte
}

func newRegistryFixture(t *testing.T) *registryFixture {
	t.Helper()
	key, err := audit.GenerateKey(nil, "coordinator")
	if err != nil {
		t.Fatal(err)
	}
	trust, err := audit.NewTrust("concord/audit", []string{key.Verifier()}, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &registryFixture{key: key, trustFile: filepath.Join(t.TempDir(), "audit-trust.txt"), versions: map[string]signedVersion{}}
	if err := os.WriteFile(f.trustFile, trust.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func layoutOf(n int) learning.Layout {
	return learning.Layout{Version: "test/1", Arch: "cnn", Input: []int{1, 28, 28}, Classes: 2, Width: 4,
		Params: []learning.LayoutEntry{{Name: "conv.weight", Shape: []int{n - 2}, Offset: 0, Size: n - 2}, {Name: "fc.bias", Shape: []int{2}, Offset: n - 2, Size: 2}},
		Total:  n}
}

// add signs a version of weights w with the given AUC at site north.
func (f *registryFixture) add(t *testing.T, version string, w []float32, auc float64) {
	t.Helper()
	raw := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	sum := sha256.Sum256(raw)
	l := layoutOf(len(w))
	m := registry.Manifest{Version: version, Status: registry.StatusPublished, Name: "pneumonia", JobID: "7",
		Purpose: "triage", Created: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), Coordinator: "test",
		Params: len(w), LayoutHash: l.Hash(), WeightsSHA256: hex.EncodeToString(sum[:]), TrainingSites: []string{"a", "b"},
		Records: map[string]uint64{"a": 10, "b": 20}, ValidationSites: []string{"north"}, Rounds: []registry.Round{{Round: 1, Contributors: []string{"a", "b"}, Samples: 30}},
		Validation: []registry.Validation{{Site: "north", ModelRole: registry.RoleGlobal, Round: 1, Receipt: []byte("r"),
			Assessment: evaluation.Assessment{Task: "binary", Examples: 100, Metrics: map[string]evaluation.Estimate{"auc": {Value: auc, Lower: auc - 0.05, Upper: auc + 0.04}}}}},
		Gate: registry.Gate{State: registry.GatePassed}}
	signed, err := registry.Sign(m, f.key)
	if err != nil {
		t.Fatal(err)
	}
	f.versions[version] = signedVersion{signed: signed, weights: raw, layout: l.JSON()}
}

func (f *registryFixture) dir(t *testing.T, version string) string {
	t.Helper()
	v := f.versions[version]
	dir := filepath.Join(t.TempDir(), version)
	if err := registry.WriteDir(dir, v.signed, v.weights, v.layout); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestModelsVerify(t *testing.T) {
	f := newRegistryFixture(t)
	f.add(t, "v1", []float32{1, 2, 3, 4, 5, 6}, 0.85)
	dir := f.dir(t, "v1")

	code, out, errs := runCtl("models", "verify", dir, "--trust", f.trustFile)
	if code != 0 || !strings.Contains(out, "valid: model v1") || errs != "" {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCtl("--json", "models", "verify", dir, "--trust", f.trustFile)
	if v := decodeJSON(t, out); code != 0 || v["valid"] != true || v["version"] != "v1" {
		t.Errorf("verify --json: exit %d: %v", code, v)
	}

	// The default trust file is ca/audit-trust.txt where concordctl runs.
	work := t.TempDir()
	t.Chdir(work)
	code, _, errs = runCtl("models", "verify", dir)
	if code != 1 || !strings.Contains(errs, "no trust file: pass --trust FILE") {
		t.Errorf("verify without a trust file: exit %d: %s", code, errs)
	}
	os.Mkdir("ca", 0o755)
	data, _ := os.ReadFile(f.trustFile)
	os.WriteFile(filepath.Join("ca", AuditTrustFile), data, 0o644)
	if code, _, errs = runCtl("models", "verify", dir); code != 0 {
		t.Errorf("verify with ca/audit-trust.txt: exit %d: %s", code, errs)
	}

	p := filepath.Join(dir, registry.FileWeights)
	b, _ := os.ReadFile(p)
	b[3] ^= 0x80
	os.WriteFile(p, b, 0o644)
	code, _, errs = runCtl("models", "verify", dir, "--trust", f.trustFile)
	if code != 1 || !strings.Contains(errs, "INVALID: model.f32: sha256") {
		t.Errorf("tampered weights: exit %d: %s", code, errs)
	}
	code, out, _ = runCtl("models", "verify", "--json", dir, "--trust", f.trustFile)
	if v := decodeJSON(t, out); code != 1 || v["valid"] != false || v["file"] != "model.f32" {
		t.Errorf("tampered weights --json: exit %d: %v", code, v)
	}
	os.Remove(filepath.Join(dir, registry.FileCardHTML))
	code, _, errs = runCtl("models", "verify", dir, "--trust", f.trustFile)
	if code != 1 || !strings.Contains(errs, "model.f32") {
		t.Errorf("the first fault is still the weights: exit %d: %s", code, errs)
	}

	for _, args := range [][]string{{"models", "verify"}, {"models", "verify", "a", "b"}, {"models", "diff", "a"}} {
		if code, out, errs := runCtl(args...); code != 2 || out != "" || !strings.Contains(errs, "usage:") {
			t.Errorf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}
}

func TestModelsDiff(t *testing.T) {
	f := newRegistryFixture(t)
	f.add(t, "v1", []float32{1, 0, 0, 0, 0, 0}, 0.85)
	f.add(t, "v2", []float32{1, 3, 4, 0, 0, 2}, 0.9)
	f.add(t, "v3", []float32{1, 2, 3}, 0.9)
	d1, d2, d3 := f.dir(t, "v1"), f.dir(t, "v2"), f.dir(t, "v3")

	code, out, errs := runCtl("models", "diff", d1, d2, "--trust", f.trustFile)
	for _, want := range []string{"north", "auc", "0.850 [0.800, 0.890]", "+0.050", "conv.weight", "fc.bias", "weights sha256"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q: exit %d\n%s\n%s", want, code, out, errs)
		}
	}
	code, out, _ = runCtl("models", "diff", d1, d2, "--trust", f.trustFile, "--json")
	v := decodeJSON(t, out)
	layers := v["layers"].([]any)
	if l := layers[0].(map[string]any); code != 0 || l["name"] != "conv.weight" || l["l2"] != float64(5) {
		t.Errorf("diff --json: exit %d: %v", code, layers)
	}

	code, _, errs = runCtl("models", "diff", d1, d3, "--trust", f.trustFile)
	if code != 1 || !strings.Contains(errs, "layouts differ") {
		t.Errorf("diff of different layouts: exit %d: %s", code, errs)
	}
	os.WriteFile(filepath.Join(d2, registry.FileManifest), f.versions["v1"].signed, 0o644)
	code, _, errs = runCtl("models", "diff", d1, d2, "--trust", f.trustFile)
	if code != 1 || !strings.Contains(errs, d2+": model.f32") {
		t.Errorf("diff with a tampered directory: exit %d: %s", code, errs)
	}
}

// modelAdmin serves registry versions over the Admin API.
type modelAdmin struct {
	fakeAdmin
	f *registryFixture
}

func (a *modelAdmin) info(version string) *pb.ModelVersion {
	v := a.f.versions[version]
	m, _, _ := registry.Inspect(v.signed)
	return &pb.ModelVersion{Version: version, JobId: m.JobID, Params: uint64(m.Params), Sha256: m.WeightsSHA256,
		LayoutHash: m.LayoutHash, Status: m.Status, DeviceUid: m.DeviceUID, Manifest: v.signed}
}

func (a *modelAdmin) ListModels(_ context.Context, r *pb.ListModelsRequest) (*pb.ListModelsResponse, error) {
	out := []*pb.ModelVersion{a.info("v1")}
	if r.IncludeRejected {
		rej := a.info("v2")
		rej.Status = registry.StatusRejected
		out = append(out, rej)
	}
	return &pb.ListModelsResponse{Models: out}, nil
}

func (a *modelAdmin) GetModelInfo(_ context.Context, r *pb.GetModelRequest) (*pb.ModelVersion, error) {
	return a.info(r.Version), nil
}

func (a *modelAdmin) GetModel(r *pb.GetModelRequest, s pb.Admin_GetModelServer) error {
	v := a.f.versions[r.Version]
	if err := s.Send(&pb.ModelChunk{Info: a.info(r.Version), Layout: v.layout, Chunk: &pb.Chunk{Data: v.weights[:8]}}); err != nil {
		return err
	}
	return s.Send(&pb.ModelChunk{Chunk: &pb.Chunk{Index: 1, Data: v.weights[8:]}})
}

func TestModelsOnline(t *testing.T) {
	f := newRegistryFixture(t)
	f.add(t, "v1", []float32{1, 0, 0, 0, 0, 0}, 0.85)
	f.add(t, "v2", []float32{1, 3, 4, 0, 0, 2}, 0.9)
	config := serve(t, &modelAdmin{f: f})

	code, out, errs := runCtl("--config", config, "models", "list", "--all")
	if code != 0 || !strings.Contains(out, "rejected") || !strings.Contains(out, "2.25.") {
		t.Errorf("list --all: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCtl("--config", config, "models", "show", "v1", "--trust", f.trustFile)
	if code != 0 || !strings.Contains(out, "verified with "+f.trustFile) || !strings.Contains(out, "0.800 – 0.890") {
		t.Errorf("show: exit %d\n%s%s", code, out, errs)
	}
	t.Chdir(t.TempDir()) // no ca/audit-trust.txt here
	code, out, errs = runCtl("--config", config, "models", "show", "v1")
	if code != 0 || !strings.Contains(out, "NOT verified: claims key "+f.key.ID()) {
		t.Errorf("show without a trust file: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCtl("--config", config, "models", "show", "v1", "--json", "--trust", f.trustFile)
	if v := decodeJSON(t, out); code != 0 || v["manifest"].(map[string]any)["version"] != "v1" {
		t.Errorf("show --json: exit %d: %v", code, v)
	}
	dir := filepath.Join(t.TempDir(), "v1")
	code, out, errs = runCtl("--config", config, "models", "download", "v1", "--out", dir, "--trust", f.trustFile)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("download: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs = runCtl("models", "verify", dir, "--trust", f.trustFile); code != 0 {
		t.Errorf("verify the download: exit %d: %s", code, errs)
	}
	// A version name instead of a directory is downloaded for the diff.
	code, out, errs = runCtl("--config", config, "models", "diff", dir, "v2", "--trust", f.trustFile)
	if code != 0 || !strings.Contains(out, "conv.weight") {
		t.Errorf("diff DIR VERSION: exit %d\n%s%s", code, out, errs)
	}
	other := newRegistryFixture(t)
	code, _, errs = runCtl("--config", config, "models", "download", "v1", "--out", t.TempDir()+"/x", "--trust", other.trustFile)
	if code != 1 || !strings.Contains(errs, "untrusted key") {
		t.Errorf("download with another consortium's trust file: exit %d: %s", code, errs)
	}
}
