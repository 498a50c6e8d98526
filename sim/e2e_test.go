package sim

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// runJob submits a job and follows it to its end.
func runJob(t *testing.T, ctx context.Context, f *Federation, spec *pb.JobSpec) *pb.Job {
	t.Helper()
	job, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return watchToEnd(t, ctx, f, job.Id)
}

func testSpec(t *testing.T, yaml string) *pb.JobSpec {
	t.Helper()
	spec, err := jobspec.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func watchToEnd(t *testing.T, ctx context.Context, f *Federation, id string) *pb.Job {
	t.Helper()
	stream, err := f.Admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	var last *pb.Job
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return last
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		last = ev.Job
	}
}

func TestPlaintextJobEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, name := range []string{"st-marys", "county-general", "riverside"} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(64, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: e2e\nrounds: 2\nmin_sites: 3\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	final := runJob(t, ctx, f, spec)
	if final.State != "completed" || len(final.Rounds) != 2 || final.ModelVersion == "" {
		t.Fatalf("job ended %s (%s) after %d rounds, model %q", final.State, final.Reason, len(final.Rounds), final.ModelVersion)
	}
	sites, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sites.Sites {
		if !s.Connected || s.Examples != 64 || s.Version == "" {
			t.Errorf("site listing %+v", s)
		}
	}
	for _, r := range final.Rounds {
		if len(r.Contributors) != 3 || r.Samples != 3*64 {
			t.Errorf("round %d: contributors %v samples %d", r.Round, r.Contributors, r.Samples)
		}
	}
	if n, err := f.Coordinator().VerifyAudit(); err != nil || n == 0 {
		t.Errorf("audit chain: %d entries, %v", n, err)
	}
	// Metrics are a subscriber of the same event stream (asynchronous:
	// give it a moment to catch up).
	var body []byte
	for try := 0; try < 20; try++ {
		resp, err := http.Get("http://" + f.Coordinator().MetricsAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `concord_events_total{kind="model.published"} 1`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{`concord_events_total{kind="round.aggregated"} 2`, "concord_sites_connected 3", `concord_jobs{phase="completed"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestSecureJobEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, name := range []string{"a-site", "b-site", "c-site", "d-site"} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(48, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 4); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: secure\nrounds: 2\nmin_sites: 3\nround_deadline: 60s\nprivacy: {secure_aggregation: mhe, threshold: 3}\nseed: 1\n")
	final := runJob(t, ctx, f, spec)
	if final.State != "completed" || len(final.Rounds) != 2 {
		t.Fatalf("job ended %s (%s) after %d rounds", final.State, final.Reason, len(final.Rounds))
	}
	if bpp := final.Rounds[1].Metrics["upload_bytes_per_param"]; bpp <= 0 || bpp > 16 {
		t.Errorf("upload bytes per parameter %g, want (0, 16]", bpp)
	}
}

// testLogger logs the federation to the test log with -v.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestSecureMatchesPlaintext runs the same one-round job (same seed, same
// sites) with and without secure aggregation: the two models differ only
// by the encryption's documented precision. (Over many rounds local
// training amplifies any floating-point difference, as it would a change
// of summation order, so the comparison is made on one aggregation.)
func TestSecureMatchesPlaintext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, name := range []string{"a-site", "b-site", "c-site"} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(40+8*i, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	models := map[string][]float32{}
	for _, mode := range []string{"none", "mhe"} {
		spec := testSpec(t, "name: compare\nrounds: 1\nmin_sites: 3\nround_deadline: 60s\nprivacy: {secure_aggregation: "+mode+"}\nseed: 11\n")
		final := runJob(t, ctx, f, spec)
		if final.State != "completed" {
			t.Fatalf("%s job %s: %s", mode, final.State, final.Reason)
		}
		if models[mode], err = fetchModel(ctx, f.Admin, final.ModelVersion); err != nil {
			t.Fatal(err)
		}
	}
	worst := 0.0
	for i := range models["none"] {
		worst = math.Max(worst, math.Abs(float64(models["none"][i]-models["mhe"][i])))
	}
	// ErrorBound(3, 3) is about 1.5e-9 per sum; divided by the 144 samples
	// it is far below float32 resolution of the weights, so the models
	// agree to float32 rounding.
	if worst > 1e-6 {
		t.Fatalf("secure and plaintext models differ by up to %g", worst)
	}
	t.Logf("max difference between the secure and the plaintext model: %g", worst)
}

// TestSimulationIsDeterministic runs the same simulated secure job twice
// with one seed: the published models are byte-identical (the seed fixes
// data, initial model, training, the job's public seed and every site's
// keys, hence the encryption noise).
func TestSimulationIsDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("two simulated jobs")
	}
	var models [2][]byte
	for i := range models {
		out := t.TempDir()
		sum, err := Run(context.Background(), Config{Sites: 3, Rounds: 2, Seed: 21, Out: out, ImagesPerSite: 24, SecureAggregation: "mhe"})
		if err != nil {
			t.Fatal(err)
		}
		if sum.RoundsCompleted != 2 {
			t.Fatalf("run %d completed %d rounds", i, sum.RoundsCompleted)
		}
		models[i] = mustRead(t, filepath.Join(out, "model.f32"))
	}
	if !bytes.Equal(models[0], models[1]) {
		t.Fatal("two runs with the same seed published different models")
	}
}
