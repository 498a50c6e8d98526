package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// buildCoordinator compiles cmd/coordinator so a test can kill -9 it.
func buildCoordinator(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "coordinator")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/coordinator")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build coordinator: %v\n%s", err, b)
	}
	return bin
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// procFederation is a coordinator process with in-process agents.
type procFederation struct {
	t      *testing.T
	bin    string
	dir    string
	addr   string
	cmd    *exec.Cmd
	logs   *bytes.Buffer
	admin  pb.AdminClient
	conn   *grpc.ClientConn
	cancel []context.CancelFunc
}

func newProcFederation(t *testing.T, bin string, sites []string, data func(i int) siteagent.DataSource) *procFederation {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if err := pki.InitCA(ca, "crash test CA"); err != nil {
		t.Fatal(err)
	}
	p := &procFederation{t: t, bin: bin, dir: dir, addr: freePort(t), logs: &bytes.Buffer{}}
	kit, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleCoordinator, Name: "coordinator", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cdir := filepath.Join(dir, "coordinator")
	cfg, err := pki.ConfigYAML(kit, pki.KitConfig{InventoryPath: filepath.Join(ca, pki.InventoryFile), Listen: p.addr, StateDir: filepath.Join(cdir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKit(cdir, kit, cfg); err != nil {
		t.Fatal(err)
	}
	p.start()
	admin, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleAdmin, Name: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := pki.ClientTLS(admin.CAPEM, admin.CertPEM, admin.KeyPEM, "127.0.0.1")
	if p.conn, err = grpc.NewClient(p.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc))); err != nil {
		t.Fatal(err)
	}
	p.admin = pb.NewAdminClient(p.conn)
	for i, name := range sites {
		k, err := pki.Issue(ca, pki.IssueRequest{Role: pki.RoleSite, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		tc, _ := pki.ClientTLS(k.CAPEM, k.CertPEM, k.KeyPEM, "127.0.0.1")
		a, err := siteagent.New(siteagent.Config{Coordinator: p.addr, TLS: tc, StateDir: filepath.Join(dir, "sites", name),
			Data: data(i), KeyPassphrase: []byte("test passphrase " + name), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
			Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = append(p.cancel, cancel)
		go a.Run(ctx)
	}
	t.Cleanup(p.close)
	return p
}

func (p *procFederation) start() {
	p.cmd = exec.Command(p.bin, "--config", filepath.Join(p.dir, "coordinator", pki.CoordinatorConfigFile))
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

// kill9 kills the coordinator with SIGKILL: no graceful stop, no flush.
func (p *procFederation) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *procFederation) close() {
	for _, c := range p.cancel {
		c()
	}
	if p.cmd != nil && p.cmd.ProcessState == nil {
		p.kill9()
	}
	p.conn.Close()
	if p.t.Failed() {
		p.t.Logf("coordinator log:\n%s", lastLines(p.logs.String(), 60))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *procFederation) waitSites(ctx context.Context, n int) {
	for ctx.Err() == nil {
		if r, err := p.admin.ListSites(ctx, &pb.ListSitesRequest{}); err == nil {
			c := 0
			for _, s := range r.Sites {
				if s.Connected {
					c++
				}
			}
			if c >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatal("sites did not connect")
}

// runWithKills watches the job and kills -9 the coordinator whenever
// killWhen says so, restarting it each time, until the job ends.
func (p *procFederation) runWithKills(ctx context.Context, id string, killWhen func(ev *pb.JobEvent) bool) (*pb.Job, int) {
	kills := 0
	for {
		stream, err := p.admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: id})
		if err != nil {
			if ctx.Err() != nil {
				p.t.Fatalf("job did not finish: %v", ctx.Err())
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var last *pb.Job
		killed := false
		for {
			ev, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return last, kills
			}
			if err != nil {
				break // coordinator gone: reconnect
			}
			last = ev.Job
			if killWhen(ev) {
				p.kill9()
				kills++
				killed = true
				break
			}
		}
		if ctx.Err() != nil {
			p.t.Fatalf("job did not finish: %v", ctx.Err())
		}
		if killed {
			time.Sleep(200 * time.Millisecond)
			p.start()
		}
	}
}

func finalWeights(t *testing.T, ctx context.Context, admin pb.AdminClient, job *pb.Job) []float32 {
	t.Helper()
	if job == nil || job.State != "completed" || job.ModelVersion == "" {
		t.Fatalf("job did not complete: %+v", job)
	}
	w, err := fetchModel(ctx, admin, job.ModelVersion)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestCrashResumeEqualsUninterrupted kills -9 the coordinator process
// mid-round several times (after some uploads of a round were accepted,
// right after a round was aggregated, and mid-key-setup for the secure
// job); each time it restarts, the job resumes without retraining sites
// that already uploaded, and the final model equals, bit for bit for
// plaintext aggregation, the model of an uninterrupted run with the same
// seed.
func TestCrashResumeEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a coordinator process")
	}
	bin := buildCoordinator(t)
	sites := []string{"site-a", "site-b", "site-c"}
	data := func(i int) siteagent.DataSource { return siteagent.MemoryData{Data: blobs(48, uint64(10+i))} }
	for _, secure := range []string{"none", "mhe"} {
		t.Run("secure="+secure, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// The plaintext job uses FedAdam, whose optimiser state must
			// survive the kills too. The secure job uses FedAvg: its two runs
			// draw different keys, so their decryption noise differs (about
			// 1e-9), and FedAdam's normalisation would amplify that noise
			// where the mean update is near zero.
			strategy := map[string]string{"none": "fedadam", "mhe": "fedavg"}[secure]
			yaml := fmt.Sprintf("name: crash\nrounds: 3\nmin_sites: 3\nround_deadline: 5m\nstraggler_cutoff: 5m\nprivacy: {secure_aggregation: %s}\naggregation: {strategy: %s}\nseed: 7\n", secure, strategy)
			run := func(kill func(ev *pb.JobEvent) bool) ([]float32, int) {
				p := newProcFederation(t, bin, sites, data)
				p.waitSites(ctx, len(sites))
				job, err := p.admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec(t, yaml)})
				if err != nil {
					t.Fatal(err)
				}
				final, kills := p.runWithKills(ctx, job.Id, kill)
				if final.State != "completed" {
					t.Fatalf("job %s: %s", final.State, final.Reason)
				}
				for _, r := range final.Rounds {
					if len(r.Contributors) != len(sites) {
						t.Errorf("round %d had contributors %v", r.Round, r.Contributors)
					}
				}
				return finalWeights(t, ctx, p.admin, final), kills
			}
			want, _ := run(func(*pb.JobEvent) bool { return false })
			accepted, done := 0, map[string]bool{}
			got, kills := run(func(ev *pb.JobEvent) bool {
				key := fmt.Sprintf("%s/%d", ev.Kind, ev.Round)
				if ev.Kind == "upload.accepted" {
					accepted++
					// Mid-round: after the second update of round 2, and mid-key-setup.
					if (accepted == 2 && secure == "mhe") || (ev.Round == 2 && !done["mid2"] && strings.Contains(ev.Detail, "update")) {
						done["mid2"] = ev.Round == 2 || done["mid2"]
						return true
					}
				}
				if ev.Kind == "round.aggregated" && ev.Round == 1 && !done[key] {
					done[key] = true
					return true
				}
				return false
			})
			if kills < 2 {
				t.Fatalf("only %d kills happened; the test did not exercise recovery", kills)
			}
			if len(got) != len(want) {
				t.Fatalf("model sizes differ: %d vs %d", len(got), len(want))
			}
			maxDiff := 0.0
			for i := range got {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
			}
			if secure == "none" && maxDiff != 0 {
				t.Errorf("interrupted run differs from the uninterrupted one by up to %g; want bit-identical", maxDiff)
			}
			// Secure runs draw fresh keys, so the two runs' decryption noise differs;
			// through three rounds of local training the models must stay this close.
			if secure == "mhe" && maxDiff > 1e-4 {
				t.Errorf("interrupted secure run differs by up to %g", maxDiff)
			}
			t.Logf("%d kills, max difference %g", kills, maxDiff)
		})
	}
}
