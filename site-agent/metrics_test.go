package siteagent

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/promtext"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFor polls ok until it holds or fails the test after a while.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func scrape(t *testing.T, base string) []promtext.Sample {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	s, err := promtext.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, body)
	}
	return s
}

// TestManagementListener runs an agent against a real gRPC peer: /readyz
// follows the data folder (503 with the reason while it is gone, 200 once
// it is back), /metrics parses and moves when a task ends, and nothing
// served names a file below the data folder.
func TestManagementListener(t *testing.T) {
	p, cfg := startPeer(t)
	data := filepath.Join(t.TempDir(), "xrays")
	writeTree(t, data, "normal/"+patient+"/1.dcm", "lesion/p7/2.dcm")
	cfg.Data = &DICOMFolder{Dir: data, Classes: []string{"normal", "lesion"}}
	cfg.CheckInterval = 20 * time.Millisecond
	cfg.MetricsListen = "127.0.0.1:0"
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.MetricsAddr().String()
	runStarted(t, a)
	<-p.hello

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	ready := func(want int) func() bool {
		return func() bool { code, _ := get(t, base+"/readyz"); return code == want }
	}
	waitFor(t, "ready", ready(200))
	s := scrape(t, base)
	if v, _ := promtext.Value(s, "concord_agent_data_examples"); v != 2 {
		t.Errorf("data examples %v, want 2", v)
	}
	waitFor(t, "connected", func() bool { v, _ := promtext.Value(scrape(t, base), "concord_agent_connected"); return v == 1 })

	aside := filepath.Join(t.TempDir(), "aside")
	if err := os.Rename(data, aside); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready", ready(503))
	_, body := get(t, base+"/readyz")
	if !strings.Contains(body, "data folder 'xrays' does not exist") || strings.Contains(body, patient) {
		t.Errorf("/readyz reason: %q", body)
	}
	if v, _ := promtext.Value(scrape(t, base), "concord_agent_data_problem"); v != 1 {
		t.Errorf("data problem %v while the folder is gone", v)
	}
	if err := os.Rename(aside, data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again", ready(200))

	// A task the agent cannot run moves the failed counter.
	odd := trainTask("job-1", 1)
	odd.Kind = 42
	p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: odd}}
	for m := range p.in { // health messages of the folder's comings and goings come first
		if m.GetStatus() != nil {
			break
		}
	}
	waitFor(t, "failed task counted", func() bool {
		v, _ := promtext.Value(scrape(t, base), "concord_agent_tasks_total", "kind", "unknown", "outcome", "failed")
		return v == 1
	})
	_, all := get(t, base+"/metrics")
	if strings.Contains(all, patient) || strings.Contains(all, "st-marys") || strings.Contains(all, "job-1") {
		t.Errorf("metrics name a patient, site or job:\n%s", all)
	}
	// A backup is a POST; a GET is refused.
	if code, _ := get(t, base+"/backup"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /backup: %d", code)
	}
}

// TestBackupOnlyToThisHost: POST /backup is answered over loopback, or to a
// management address from that address, and refused to another host.
func TestBackupOnlyToThisHost(t *testing.T) {
	for _, c := range []struct {
		remote, local string
		want          bool
	}{
		{"127.0.0.1:5000", "127.0.0.1:9101", true},
		{"[::1]:5000", "[::1]:9101", true},
		{"10.0.0.5:5000", "10.0.0.5:9101", true},
		{"10.0.0.7:5000", "10.0.0.5:9101", false},
		{"garbage", "10.0.0.5:9101", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/backup", nil)
		r.RemoteAddr = c.remote
		local, err := net.ResolveTCPAddr("tcp", c.local)
		if err != nil {
			t.Fatal(err)
		}
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
		if got := fromThisHost(r); got != c.want {
			t.Errorf("from %s to %s: %v, want %v", c.remote, c.local, got, c.want)
		}
	}
}
