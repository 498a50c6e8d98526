package serving

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/servetest"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/privacy/audit"
)

// site is a hospital with a published version downloaded and approved.
type site struct {
	state, models, feedback string
	trust                   *audit.Trust
	key                     *audit.Key
	store                   *Store
}

func newSite(t testing.TB) *site {
	t.Helper()
	key, trust, err := servetest.Key()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &site{state: filepath.Join(dir, "state"), models: filepath.Join(dir, "models"), feedback: filepath.Join(dir, "feedback"), trust: trust, key: key}
	if _, err := servetest.Publish(s.models, key, servetest.Version{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if s.store, err = OpenStore(s.state, time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	return s
}

func (s *site) approve(t testing.TB, version string) {
	t.Helper()
	m, sum, err := VerifyVersion(filepath.Join(s.models, version), s.trust)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.Approve(Approval{Version: version, ManifestSHA256: sum, DeviceUID: m.DeviceUID, By: "dr-test", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func (s *site) load(t testing.TB) (*Model, error) {
	t.Helper()
	ap, err := s.store.Approvals()
	if err != nil {
		t.Fatal(err)
	}
	return LoadApproved(s.models, s.trust, ap)
}

// start runs a server on a loopback port until the test ends.
func (s *site) start(t testing.TB, sender Sender, mod func(*Config)) *Server {
	t.Helper()
	m, err := s.load(t)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Listen: "127.0.0.1:0", StateDir: s.state, FeedbackDir: s.feedback, Classes: []string{"normal", "pneumonia"},
		PatientIDSystem: "urn:oid:1.2.3.4", Model: m, Store: s.store, Sender: sender, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == "" && cfg.WatchDir == "-" {
		return srv // handler only
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv
}

// pydicom returns the path of a file of the shared pydicom set.
func pydicom(t testing.TB, name string) string {
	return testenv.Shared(t, filepath.Join("data", "dicom", "pydicom", name))
}

// stow posts files as one STOW-RS request and decodes the response.
func stow(t testing.TB, url string, parts ...[]byte) (int, map[string]any) {
	t.Helper()
	status, b, err := PostSTOW(context.Background(), url, parts...)
	if err != nil {
		t.Fatal(err)
	}
	var ds map[string]any
	if err := json.Unmarshal(b, &ds); err != nil {
		ds = map[string]any{"text": string(b)}
	}
	return status, ds
}

// seq returns the items of a sequence attribute of a DICOM JSON dataset.
func seq(ds map[string]any, tag string) []map[string]any {
	a, _ := ds[tag].(map[string]any)
	v, _ := a["Value"].([]any)
	var out []map[string]any
	for _, x := range v {
		out = append(out, x.(map[string]any))
	}
	return out
}

// value returns the first value of an attribute of a DICOM JSON item.
func value(item map[string]any, tag string) any {
	a, _ := item[tag].(map[string]any)
	v, _ := a["Value"].([]any)
	if len(v) == 0 {
		return nil
	}
	return v[0]
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
