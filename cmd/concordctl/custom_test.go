package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// submitAdmin is a coordinator that keeps the specs submitted to it.
type submitAdmin struct {
	fakeAdmin
	got []*pb.JobSpec
}

func (f *submitAdmin) SubmitJob(_ context.Context, r *pb.SubmitJobRequest) (*pb.Job, error) {
	f.got = append(f.got, r.Spec)
	return &pb.Job{Id: "7", Spec: r.Spec}, nil
}

// TestSubmitCustomModel: jobs submit reads the module next to the job file
// into the spec, and refuses a module changed after its hash was pinned
// without submitting anything.
func TestSubmitCustomModel(t *testing.T) {
	f := &submitAdmin{}
	config := serve(t, f)
	src := filepath.Join("..", "..", "deploy", "examples", "custom")
	dir := t.TempDir()
	for _, name := range []string{"job.yaml", "net.py"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	job := filepath.Join(dir, "job.yaml")
	code, out, errs := runCtl("--config", config, "jobs", "submit", job)
	if code != 0 || len(f.got) != 1 || !strings.Contains(out, "Job 7 submitted") || !strings.Contains(out, "site-agent models approve-code "+f.got[0].GetModel().GetCodeSha256()) {
		t.Fatalf("submit: exit %d: %s%s", code, out, errs)
	}
	net, _ := os.ReadFile(filepath.Join(dir, "net.py"))
	if m := f.got[0].Model; string(m.Code) != string(net) || m.CodeFile != "net.py" || len(m.CustomLayout) != 6 {
		t.Fatalf("submitted model: %d code bytes, file %q, %d tensors", len(m.Code), m.CodeFile, len(m.CustomLayout))
	}
	if err := os.WriteFile(filepath.Join(dir, "net.py"), append(net, "\n# changed\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCtl("--config", config, "jobs", "submit", job)
	if code == 0 || len(f.got) != 1 || !strings.Contains(errs, "the file changed since it was pinned") {
		t.Fatalf("submit with a changed module: exit %d, %d submitted: %s%s", code, len(f.got), out, errs)
	}
}
