package serving

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/internal/servetest"
)

func TestLoadServesTheLatestApprovedVersion(t *testing.T) {
	s := newSite(t)
	if _, err := servetest.Publish(s.models, s.key, servetest.Version{Version: "v2", Seed: 1, Threshold: 0.7,
		Created: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s.approve(t, "v1")
	m, err := s.load(t)
	if err != nil {
		t.Fatal(err)
	}
	if m.Manifest.Version != "v1" || m.Threshold != 0.5 {
		t.Fatalf("serving %s at %g, want v1 (v2 is not approved) at 0.5", m.Manifest.Version, m.Threshold)
	}
	s.approve(t, "v2")
	if m, err = s.load(t); err != nil {
		t.Fatal(err)
	}
	if m.Manifest.Version != "v2" || m.Threshold != 0.7 {
		t.Fatalf("serving %s at %g, want v2 at its validated 0.7", m.Manifest.Version, m.Threshold)
	}
}

func TestLoadFailsClosed(t *testing.T) {
	flip := func(file string) func(t *testing.T, s *site) {
		return func(t *testing.T, s *site) {
			p := filepath.Join(s.models, "v1", file)
			b := readFile(t, p)
			b[len(b)/2] ^= 1
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		approve bool
		after   func(t *testing.T, s *site)
		want    string
	}{
		{name: "not approved", want: "no version is approved"},
		{name: "tampered weights", approve: true, after: flip(registry.FileWeights), want: "model.f32"},
		{name: "tampered manifest", approve: true, after: flip(registry.FileManifest), want: "manifest.json"},
		{name: "signed by another key", approve: true, after: func(t *testing.T, s *site) {
			other, _, err := servetest.Key()
			if err != nil {
				t.Fatal(err)
			}
			os.RemoveAll(filepath.Join(s.models, "v1"))
			if _, err := servetest.Publish(s.models, other, servetest.Version{Version: "v1"}); err != nil {
				t.Fatal(err)
			}
		}, want: "untrusted key"},
		{name: "re-published with other weights after approval", approve: true, after: func(t *testing.T, s *site) {
			os.RemoveAll(filepath.Join(s.models, "v1"))
			if _, err := servetest.Publish(s.models, s.key, servetest.Version{Version: "v1", Seed: 9}); err != nil {
				t.Fatal(err)
			}
		}, want: "approve the version again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t)
			if tc.approve {
				s.approve(t, "v1")
			}
			if tc.after != nil {
				tc.after(t, s)
			}
			_, err := s.load(t)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal naming %q", err, tc.want)
			}
		})
	}
}

func TestRejectedVersionCannotBeApproved(t *testing.T) {
	s := newSite(t)
	if _, err := servetest.Publish(s.models, s.key, servetest.Version{Version: "candidate-3", Rejected: true}); err != nil {
		t.Fatal(err)
	}
	_, _, err := VerifyVersion(filepath.Join(s.models, "candidate-3"), s.trust)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "min_auc") {
		t.Fatalf("got %v, want a refusal with the gate's reason", err)
	}
}

func TestStoreIsHeldByOneProcess(t *testing.T) {
	s := newSite(t)
	_, err := OpenStore(s.state, 100*time.Millisecond)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "stop `site-agent serve` first") {
		t.Fatalf("second open: %v, want ErrBusy saying what to do", err)
	}
}
