package sim

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/internal/promtext"
	"github.com/concord-fl/concord/internal/servetest"
	"github.com/concord-fl/concord/serving"
	"github.com/concord-fl/concord/serving/fhirr4"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// exported returns the metric names a /metrics body declares (TYPE lines)
// or samples.
func exported(t *testing.T, url string, into map[string]bool) {
	t.Helper()
	code, body := httpGet(t, url)
	if code != 200 {
		t.Fatalf("%s: %d", url, code)
	}
	if _, err := promtext.Parse(strings.NewReader(body)); err != nil {
		t.Fatalf("%s is not Prometheus text: %v\n%s", url, err, body)
	}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "#" && f[1] == "TYPE":
			into[f[2]] = true
		case len(f) >= 2 && f[0] != "#":
			into[strings.SplitN(f[0], "{", 2)[0]] = true
		}
	}
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	concordRef = regexp.MustCompile(`\bconcord_[a-zA-Z0-9_:]*`)
)

// metricNames are the concord_ metrics a PromQL expression names; label
// values in quotes are not names.
func metricNames(expr string) []string {
	return concordRef.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
}

// TestMonitoringNamesExportedMetrics: every panel of the example Grafana
// dashboard and every alert rule in deploy/monitoring names only metrics
// that a running coordinator and site agent export.
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	f, ctx := startFederation(t)
	if err := f.AddSite("st-marys", SiteOptions{Data: siteagent.MemoryData{Data: blobs(16, 1)}, MetricsListen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	exported(t, "http://"+f.Coordinator().MetricsAddr().String()+"/metrics", names)
	exported(t, "http://"+f.Agent("st-marys").MetricsAddr().String()+"/metrics", names)
	exported(t, "http://"+startServing(t)+"/metrics", names)
	check := func(where, expr string) {
		refs := metricNames(expr)
		if len(refs) == 0 {
			t.Errorf("%s: %q names no concord metric", where, expr)
		}
		for _, n := range refs {
			if !names[n] {
				t.Errorf("%s: %q names %s, which no daemon exports", where, expr, n)
			}
		}
	}
	dir := filepath.Join("..", "deploy", "monitoring")

	data, err := os.ReadFile(filepath.Join(dir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var dash struct {
		Title  string  `json:"title"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	graphs := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		graphs++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			check("panel "+p.Title, q.Expr)
		}
	}
	if graphs < 10 {
		t.Errorf("the dashboard has %d panels", graphs)
	}

	data, err = os.ReadFile(filepath.Join(dir, "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			check("alert "+r.Alert, r.Expr)
		}
	}
	for _, want := range []string{"ConcordSiteOffline", "ConcordJobAborted", "ConcordPrivacyBudgetNearlySpent", "ConcordWitnessAlarm",
		"ConcordDataDrift", "ConcordCoordinatorNotReady", "ConcordAgentNotReady", "ConcordResultsUndelivered"} {
		if !alerts[want] {
			t.Errorf("alerts.yaml has no %s rule", want)
		}
	}
	if names["concord_agent_made_up"] || len(metricNames(`x{kind="concord_not_a_metric"}`)) != 0 {
		t.Error("the name extraction is too lenient")
	}
}

// startServing runs `site-agent serve`'s server on an approved version
// until the test ends and returns its address. Its FHIR endpoint is never
// reached: nothing is served.
func startServing(t *testing.T) string {
	t.Helper()
	key, trust, err := servetest.Key()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if _, err := servetest.Publish(models, key, servetest.Version{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	store, err := serving.OpenStore(filepath.Join(dir, "state"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	m, sum, err := serving.VerifyVersion(filepath.Join(models, "v1"), trust)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Approve(serving.Approval{Version: "v1", ManifestSHA256: sum, DeviceUID: m.DeviceUID, By: "test", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ap, err := store.Approvals()
	if err != nil {
		t.Fatal(err)
	}
	model, err := serving.LoadApproved(models, trust, ap)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serving.New(serving.Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(dir, "state"), FeedbackDir: filepath.Join(dir, "feedback"),
		Classes: []string{"normal", "lesion"}, PatientIDSystem: "urn:oid:1.2.3.4", Model: model, Store: store,
		Sender: &fhirr4.Client{Base: "http://127.0.0.1:1/fhir"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
	})
	return srv.Addr().String()
}
