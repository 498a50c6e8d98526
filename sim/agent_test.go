package sim

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// countingTrainer counts training calls and can stop its agent right after
// training, before anything is uploaded: a crash at the worst moment.
type countingTrainer struct {
	calls    atomic.Int32
	mu       sync.Mutex
	crashNow context.CancelFunc
}

func (c *countingTrainer) Train(ctx context.Context, req siteagent.TrainRequest) (siteagent.TrainResult, error) {
	c.calls.Add(1)
	res, err := fixedTrainer{site: 1}.Train(ctx, req)
	c.mu.Lock()
	if c.crashNow != nil {
		c.crashNow()
		c.crashNow = nil
	}
	c.mu.Unlock()
	return res, err
}

// TestAgentRestartNeverRetrainsOrDoubleSubmits stops an agent right after
// it trained, before its upload; the restarted agent finds the recorded
// update, uploads it without training again, and the job completes.
func TestAgentRestartNeverRetrainsOrDoubleSubmits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := &countingTrainer{}
	opts := SiteOptions{Data: siteagent.MemoryData{Data: blobs(16, 1)}, Trainer: tr}
	if err := f.AddSite("st-marys", opts); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Arrange the crash: the trainer stops the agent as it returns.
	tr.mu.Lock()
	tr.crashNow = func() { f.crashSite("st-marys") }
	tr.mu.Unlock()
	spec := testSpec(t, "name: restart\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	job, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	for tr.calls.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	f.StopSite("st-marys") // wait for the crashed agent to be gone
	evs, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{JobId: job.Id})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Events {
		if e.Kind == "upload.accepted" {
			t.Fatal("the update reached the coordinator before the crash; the test did not exercise recovery")
		}
	}
	if err := f.RestartSite("st-marys", opts); err != nil {
		t.Fatal(err)
	}
	final := watchToEnd(t, ctx, f, job.Id)
	if final.State != "completed" {
		t.Fatalf("job %s: %s", final.State, final.Reason)
	}
	if n := tr.calls.Load(); n != 1 {
		t.Fatalf("the site trained %d times for one round; a restart must resume the recorded update", n)
	}
}

// connectProxy is a minimal HTTP CONNECT proxy, like a hospital's.
type connectProxy struct{ tunnels atomic.Int32 }

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, _ := w.(http.Hijacker)
	conn, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	p.tunnels.Add(1)
	conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() { io.Copy(up, buf); up.Close() }()
	go func() { io.Copy(conn, up); conn.Close() }()
}

// TestAgentThroughHTTPProxy runs a job with the agent reaching the
// coordinator only through an HTTP CONNECT proxy.
func TestAgentThroughHTTPProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proxy := &connectProxy{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(lis)
	defer srv.Close()
	f, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, _ := url.Parse("http://" + lis.Addr().String())
	if err := f.AddSite("behind-proxy", SiteOptions{Data: siteagent.MemoryData{Data: blobs(16, 1)}, Proxy: u}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitSites(ctx, 1); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: proxy\nrounds: 1\nmin_sites: 1\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\nseed: 1\n")
	if final := runJob(t, ctx, f, spec); final.State != "completed" {
		t.Fatalf("job %s: %s", final.State, final.Reason)
	}
	if proxy.tunnels.Load() == 0 {
		t.Fatal("the agent did not go through the proxy")
	}
}
