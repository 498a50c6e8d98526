package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/concord-fl/concord/internal/version"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func runCtl(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDispatcher(t *testing.T) {
	noConfig := filepath.Join(t.TempDir(), "absent.yaml")
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{nil, 2, "", "usage: concordctl COMMAND"},
		{[]string{"help"}, 0, "commands:", ""},
		{[]string{"--help"}, 0, "jobs", ""},
		{[]string{"-h"}, 0, "pki", ""},
		{[]string{"help", "jobs"}, 0, "usage: concordctl jobs COMMAND", ""},
		{[]string{"help", "jobs", "abort"}, 0, "--reason", ""},
		{[]string{"jobs", "abort", "-h"}, 0, "usage: concordctl jobs abort ID", ""},
		{[]string{"jbos"}, 2, "", `did you mean "jobs"?`},
		{[]string{"jobs", "lsit"}, 2, "", `did you mean "list"?`},
		{[]string{"pki", "isue"}, 2, "", `did you mean "issue"?`},
		{[]string{"modles", "list"}, 2, "", `did you mean "models"?`},
		// Each command has its own flags: another command's flag is refused.
		{[]string{"sites", "list", "--reason", "x"}, 2, "", "flag provided but not defined: -reason"},
		{[]string{"jobs", "abort", "7", "--out", "f"}, 2, "", "flag provided but not defined: -out"},
		{[]string{"jobs", "list", "--job", "7"}, 2, "", "flag provided but not defined: -job"},
		{[]string{"models", "get", "v1", "--limit", "3"}, 2, "", "flag provided but not defined: -limit"},
		{[]string{"pki", "list", "--reason", "x"}, 2, "", "flag provided but not defined: -reason"},
		{[]string{"jobs", "status"}, 2, "", "missing argument"},
		{[]string{"jobs", "status", "1", "2"}, 2, "", `unexpected argument "2"`},
		{[]string{"--config", noConfig, "sites", "list"}, 1, "", "read " + noConfig},
		// version answers without a coordinator.
		{[]string{"--config", noConfig, "version"}, 0, "concordctl " + version.Of(version.Default) + "\ncoordinator: not reached", ""},
		{[]string{"--config", noConfig, "--version"}, 0, "concordctl ", ""},
	} {
		code, out, errs := runCtl(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.errs) {
			t.Errorf("%v: exit %d (want %d)\nstdout %q\nstderr %q", tc.args, code, tc.code, out, errs)
		}
		if code == 2 && out != "" {
			t.Errorf("%v: usage error on stdout: %q", tc.args, out)
		}
		if code == 0 && errs != "" {
			t.Errorf("%v: stderr %q on success", tc.args, errs)
		}
	}
}

// fakeAdmin serves fixed data in small pages, so that concordctl must
// follow next_page_token to see everything.
type fakeAdmin struct {
	pb.UnimplementedAdminServer
	sites  []*pb.Site
	jobs   []*pb.Job
	events []*pb.JobEvent
}

const testPage = 2

func page(token string, n int) (start, end int, next string) {
	start, _ = strconv.Atoi(token)
	end = min(start+testPage, n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next
}

func (f *fakeAdmin) ListSites(_ context.Context, r *pb.ListSitesRequest) (*pb.ListSitesResponse, error) {
	s, e, next := page(r.PageToken, len(f.sites))
	return &pb.ListSitesResponse{Sites: f.sites[s:e], NextPageToken: next}, nil
}

func (f *fakeAdmin) ListJobs(_ context.Context, r *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	s, e, next := page(r.PageToken, len(f.jobs))
	return &pb.ListJobsResponse{Jobs: f.jobs[s:e], NextPageToken: next}, nil
}

func (f *fakeAdmin) ListModels(context.Context, *pb.ListModelsRequest) (*pb.ListModelsResponse, error) {
	return &pb.ListModelsResponse{Models: []*pb.ModelVersion{{Version: "v1", JobId: "1", Round: 3, Params: 1 << 40, Sha256: "ab"}}}, nil
}

func (f *fakeAdmin) ListEvents(_ context.Context, r *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	var after []*pb.JobEvent
	for _, ev := range f.events {
		if ev.Seq > r.AfterSeq {
			after = append(after, ev)
		}
	}
	s, e, next := page(r.PageToken, len(after))
	return &pb.ListEventsResponse{Events: after[s:e], NextPageToken: next}, nil
}

func (f *fakeAdmin) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Version: "9.9.9", MaxModelParams: 50_000_000, MaxPageSize: 500, MaxStringBytes: 4096}, nil
}

// serve starts fakeAdmin over real gRPC with mutual TLS from a real CA and
// returns the admin's concordctl.yaml.
func serve(t *testing.T, f pb.AdminServer) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca")
	if err := pki.InitCA(ca, ""); err != nil {
		t.Fatal(err)
	}
	coord, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleCoordinator, Name: "coordinator", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ServerTLS(coord.CAPEM, coord.CertPEM, coord.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	pb.RegisterAdminServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	admin, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleAdmin, Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ConfigYAML(admin, pki.KitConfig{CoordinatorAddr: lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	kit := filepath.Join(t.TempDir(), "alice")
	if err := pki.WriteKit(kit, admin, cfg); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(kit, pki.CtlConfigFile)
}

// checkKeys fails on any key that is not snake_case, anywhere in v.
func checkKeys(t *testing.T, where string, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			for _, r := range k {
				if unicode.IsUpper(r) || r == '-' {
					t.Errorf("%s: key %q is not snake_case", where, k)
					break
				}
			}
			checkKeys(t, where+"."+k, e)
		}
	case []any:
		for i, e := range x {
			checkKeys(t, fmt.Sprintf("%s[%d]", where, i), e)
		}
	}
}

func decodeJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	checkKeys(t, "$", v)
	return v
}

func TestAgainstACoordinator(t *testing.T) {
	f := &fakeAdmin{}
	for i := 1; i <= 5; i++ {
		f.sites = append(f.sites, &pb.Site{Name: fmt.Sprintf("site-%d", i), Connected: i%2 == 0, Version: "0.1.0", LastSeenUnix: 1700000000, Examples: 160})
		f.events = append(f.events, &pb.JobEvent{Seq: int64(i), UnixMillis: 1700000000000, Kind: "round", JobId: "1", Detail: "d"})
	}
	for i := 1; i <= 3; i++ {
		f.jobs = append(f.jobs, &pb.Job{Id: strconv.Itoa(i), State: "running", Round: 2, CreatedUnix: 1700000000,
			Spec:   &pb.JobSpec{Name: "pneumonia", Rounds: 10, MinSites: 2, RoundDeadlineSeconds: 600},
			Rounds: []*pb.RoundSummary{{Round: 1, Samples: 320, Metrics: map[string]float64{"auc": 0.8}}}})
	}
	f.sites[2].WitnessAlarm = "2026-11-28T01:00:00Z: refused to cosign the audit checkpoint of size 40: log history rewritten"
	f.sites[2].DataProblem = "no class folders"
	config := serve(t, f)

	// A witness alarm is the site's problem before any other.
	code, out, errs := runCtl("--config", config, "sites", "list")
	if code != 0 || !strings.Contains(out, "WITNESS ALARM 2026-11-28T01:00:00Z: refused to cosign") || strings.Contains(out, "no class folders") {
		t.Fatalf("sites list: exit %d: %s%s", code, out, errs)
	}
	code, out, errs = runCtl("--config", config, "sites", "list", "--json")
	if code != 0 {
		t.Fatalf("sites list: exit %d: %s", code, errs)
	}
	sites := decodeJSON(t, out)["sites"].([]any)
	if len(sites) != 5 {
		t.Fatalf("sites list returned %d sites, want all 5 pages' worth", len(sites))
	}
	s0 := sites[0].(map[string]any)
	if n, ok := s0["examples"].(float64); !ok || n != 160 {
		t.Errorf("examples = %#v, want the JSON number 160", s0["examples"])
	}
	if n, ok := s0["last_seen_unix"].(float64); !ok || n != 1700000000 {
		t.Errorf("last_seen_unix = %#v, want a JSON number", s0["last_seen_unix"])
	}
	if _, ok := s0["connected"].(bool); !ok {
		t.Errorf("connected = %#v, want a JSON bool even when false", s0["connected"])
	}

	// --json may come before the command too, and the table is the default.
	code, out, _ = runCtl("--config", config, "--json", "jobs", "list")
	jobs := decodeJSON(t, out)["jobs"].([]any)
	if code != 0 || len(jobs) != 3 {
		t.Fatalf("jobs list: exit %d, %d jobs", code, len(jobs))
	}
	spec := jobs[0].(map[string]any)["spec"].(map[string]any)
	if n, ok := spec["min_sites"].(float64); !ok || n != 2 {
		t.Errorf("spec.min_sites = %#v", spec["min_sites"])
	}
	rounds := jobs[0].(map[string]any)["rounds"].([]any)
	if n, ok := rounds[0].(map[string]any)["samples"].(float64); !ok || n != 320 {
		t.Errorf("rounds[0].samples = %#v, want the number 320", rounds[0].(map[string]any)["samples"])
	}
	code, out, _ = runCtl("--config", config, "jobs", "list")
	if code != 0 || strings.Count(out, "pneumonia") != 3 {
		t.Errorf("jobs list table: exit %d\n%s", code, out)
	}

	code, out, _ = runCtl("--config", config, "models", "list", "--json")
	m := decodeJSON(t, out)["models"].([]any)[0].(map[string]any)
	if n, ok := m["params"].(float64); code != 0 || !ok || n != 1<<40 {
		t.Errorf("models list params = %#v (exit %d)", m["params"], code)
	}

	code, out, _ = runCtl("--config", config, "events", "--after", "1", "--limit", "3", "--json")
	evs := decodeJSON(t, out)["events"].([]any)
	if code != 0 || len(evs) != 3 {
		t.Fatalf("events --after 1 --limit 3: exit %d, %d events", code, len(evs))
	}
	for i, ev := range evs {
		if seq := ev.(map[string]any)["seq"]; seq != float64(i+2) {
			t.Errorf("event %d: seq %#v, want %d", i, seq, i+2)
		}
	}
	code, out, _ = runCtl("--config", config, "events", "--after", "2")
	if code != 0 || strings.Count(out, "round") != 3 {
		t.Errorf("events --after 2 (every page): exit %d\n%s", code, out)
	}

	code, out, _ = runCtl("--config", config, "version")
	if code != 0 || !strings.Contains(out, "coordinator 9.9.9 (max model params 50000000") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
	code, out, _ = runCtl("--config", config, "version", "--json")
	v := decodeJSON(t, out)
	co := v["coordinator"].(map[string]any)
	if code != 0 || v["client_version"] != version.Of(version.Default) || co["reached"] != true || co["max_model_params"] != float64(50_000_000) {
		t.Errorf("version --json: exit %d: %v", code, v)
	}
}

func TestVersionWithUnreachableCoordinator(t *testing.T) {
	config := serve(t, &fakeAdmin{})
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	var rewritten []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "coordinator:") {
			line = "coordinator: " + closed
		}
		rewritten = append(rewritten, line)
	}
	if err := os.WriteFile(config, []byte(strings.Join(rewritten, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCtl("--config", config, "version")
	if code != 0 || !strings.Contains(out, "coordinator: not reached (cannot reach the coordinator") {
		t.Errorf("version with the coordinator down: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	code, _, errs = runCtl("--config", config, "sites", "list")
	if code != 1 || !strings.Contains(errs, "cannot reach the coordinator") {
		t.Errorf("sites list with the coordinator down: exit %d: %s", code, errs)
	}
}

func TestConfigRefusesUnknownKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "concordctl.yaml")
	if err := os.WriteFile(p, []byte("coordinator: 127.0.0.1:7443\ntls:\n  ca: ca.pem\n  cert: cert.pem\n  kee: key.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCtl("--config", p, "sites", "list")
	if code != 1 || !strings.Contains(errs, "line 5: unknown key kee") {
		t.Errorf("exit %d: %s", code, errs)
	}
}
