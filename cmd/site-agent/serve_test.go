package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/servetest"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/serving"
)

// serveSite writes an agent.yaml with a serve: block (extra appended) and
// a models folder holding v1, published and signed by the returned key;
// the consortium's trust file is beside it.
func serveSite(t *testing.T, serve string) (cfgPath string, key *audit.Key) {
	t.Helper()
	dir := t.TempDir()
	key, trust, err := servetest.Key()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "trust.txt"), trust.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := servetest.Publish(filepath.Join(dir, "models"), key, servetest.Version{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	cfg := "state_dir: state\ndata: {classes: [normal, pneumonia]}\nfeedback: {dir: feedback}\nserve:\n  models_dir: models\n  trust: trust.txt\n" + serve
	cfgPath = filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, key
}

func TestServeConfigRefusesWhatItCannotHonour(t *testing.T) {
	const ok = "  listen: 127.0.0.1:0\n  fhir_base: http://127.0.0.1:1/fhir\n  patient_id_system: urn:oid:1.2.3\n"
	for _, tc := range []struct{ serve, want string }{
		{"  listen: 127.0.0.1:0\n  fhir_base: http://x/fhir\n  patient_id_system: urn:oid:1\n  colour: blue\n", "colour"},
		{"  fhir_base: http://x/fhir\n  patient_id_system: urn:oid:1\n", "listen and watch_dir are both empty"},
		{"  listen: 127.0.0.1:0\n  fhir_base: ftp://x\n  patient_id_system: urn:oid:1\n", "fhir_base"},
		{"  listen: 127.0.0.1:0\n  fhir_base: http://x/fhir\n", "patient_id_system"},
		{ok + "  watch_dir: state/in\n", "inside state_dir"},
		{ok + "  watch_interval: 1s\n", "watch_interval is set but watch_dir is not"},
		{ok + "  retry_min: 10s\n  retry_max: 1s\n", "retry_min"},
		{ok + "  max_request_mb: 99999\n", "max_request_mb"},
		{ok + "  segment_label: liver\n", "segment_label is set but data.layout is not segmentation"},
		{ok + "  seg_dicomweb: http://pacs/dicom-web\n", "seg_dicomweb is set but data.layout is not segmentation"},
	} {
		p, _ := serveSite(t, tc.serve)
		var out, errb bytes.Buffer
		if code := run([]string{"serve", "--config", p}, &out, &errb); code != 1 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 1 naming %q", tc.serve, code, errb.String(), tc.want)
		}
	}
	// A valid config with nothing approved: refused with what to do.
	p, _ := serveSite(t, ok)
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--config", p}, &out, &errb); code != exitPermanent || !strings.Contains(errb.String(), "models approve") {
		t.Fatalf("unapproved: exit %d, %q", code, errb.String())
	}
}

func TestModelsApproveAndList(t *testing.T) {
	p, key := serveSite(t, "")
	dir := filepath.Dir(p)
	if _, err := servetest.Publish(filepath.Join(dir, "models"), key, servetest.Version{Version: "candidate-2", Rejected: true}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"models", "approve", "v1", "--config", p, "--by", "dr-house"}, &out, &errb); code != 0 {
		t.Fatalf("approve: %d %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"models", "approve", "candidate-2", "--config", p}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "rejected") {
		t.Fatalf("approving a rejected version: %d %q", code, errb.String())
	}
	w := filepath.Join(dir, "models", "v1", "model.f32")
	b, _ := os.ReadFile(w)
	b[0] ^= 1
	os.WriteFile(w, b, 0o644)
	errb.Reset()
	if code := run([]string{"models", "approve", "v1", "--config", p}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "model.f32") {
		t.Fatalf("approving a tampered version: %d %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"models", "list", "--config", p, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("list: %d %s", code, errb.String())
	}
	var got modelsListJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Approvals) != 1 || got.Approvals[0].Version != "v1" || got.Approvals[0].By != "dr-house" || len(got.Approvals[0].ManifestSHA256) != 64 {
		t.Fatalf("approvals %+v", got.Approvals)
	}
}

// TestServeConfigForASegmentationSite: a site with data.layout
// segmentation needs no classes, and its segment label and PACS reach the
// server, which takes them with the approved unet.
func TestServeConfigForASegmentationSite(t *testing.T) {
	dir := t.TempDir()
	key, trust, err := servetest.Key()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "trust.txt"), trust.Marshal(), 0o644)
	unet := "name: liver\nrounds: 1\nmin_sites: 1\nmodel: {arch: unet, height: 32, width: 32, base_width: 2}\n" +
		"privacy: {secure_aggregation: none}\npipeline: {width: 32, height: 32, channels: 1, normalise: ct-window:40:400}\n"
	if _, err := servetest.Publish(filepath.Join(dir, "models"), key, servetest.Version{Version: "s1", SpecYAML: unet}); err != nil {
		t.Fatal(err)
	}
	cfg := "state_dir: state\ndata: {layout: segmentation}\nserve:\n  models_dir: models\n  trust: trust.txt\n  listen: 127.0.0.1:0\n" +
		"  fhir_base: http://127.0.0.1:1/fhir\n  patient_id_system: urn:oid:1.2.3\n  segment_label: liver\n  seg_dicomweb: http://127.0.0.1:1/dicom-web\n"
	p := filepath.Join(dir, "agent.yaml")
	os.WriteFile(p, []byte(cfg), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"models", "approve", "s1", "--config", p, "--by", "dr-house"}, &out, &errb); code != 0 {
		t.Fatalf("approve: %d %s", code, errb.String())
	}
	st, err := serveConfig(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.cfg.Classes) != 0 || st.cfg.SegmentLabel != "liver" || st.cfg.SEGStore != "http://127.0.0.1:1/dicom-web" {
		t.Fatalf("config: classes %v, label %q, SEG store %q", st.cfg.Classes, st.cfg.SegmentLabel, st.cfg.SEGStore)
	}
	store, err := serving.OpenStore(st.stateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ap, _ := store.Approvals()
	m, err := serving.LoadApproved(st.modelsDir, st.trust, ap)
	if err != nil {
		t.Fatal(err)
	}
	st.cfg.Model, st.cfg.Store, st.cfg.Sender = m, store, refusing{}
	st.cfg.Listen, st.cfg.WatchDir = "", t.TempDir() // New opens no listener the test would leave open
	if _, err := serving.New(st.cfg); err != nil || !m.Segments() {
		t.Fatalf("serving the unet: %v (segments %v)", err, m.Segments())
	}
}
