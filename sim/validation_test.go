package sim

import (
	"context"
	"crypto"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/evaluation/receipt"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kitKey is the private key of a certificate, as an agent signs receipts
// with it.
func kitKey(t *testing.T, kit pki.Kit) crypto.Signer {
	t.Helper()
	pair, err := tls.X509KeyPair(kit.CertPEM, kit.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair.PrivateKey.(crypto.Signer)
}

// assessment is what a validation site would report at a given AUC.
func assessment(auc float64) evaluation.Assessment {
	e := func(v float64) evaluation.Estimate {
		return evaluation.Estimate{Value: v, Lower: max(0, v-0.05), Upper: min(1, v+0.05)}
	}
	return evaluation.Assessment{Task: "binary", Examples: 80, Positives: 40, Threshold: 0.5,
		Metrics:   map[string]evaluation.Estimate{"auc": e(auc), "sensitivity": e(0.8), "specificity": e(0.7), "f1": e(0.75)},
		Confusion: map[string]int{"tp": 32, "fn": 8, "tn": 28, "fp": 12}}
}

// report signs a receipt for task with key and sends it on the site's
// task stream.
func (s *rawSite) report(t *testing.T, task *pb.Task, key crypto.Signer, edit func(*receipt.Receipt)) {
	t.Helper()
	r := receipt.Receipt{Site: "site-v", JobID: task.JobId, Round: int(task.Round), ModelRole: task.ModelRole,
		ModelSHA256: task.ModelSha256, DataManifest: strings.Repeat("ab", 32), PipelineHash: "p", Assessment: assessment(0.95),
		Time: time.Now().UTC()}
	if edit != nil {
		edit(&r)
	}
	signed, err := receipt.Sign(r, key)
	if err != nil {
		t.Fatal(err)
	}
	err = s.stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Validation{Validation: &pb.ValidationReport{
		TaskId: task.TaskId, JobId: task.JobId, Round: task.Round, Nonce: task.Nonce, Receipt: signed}}})
	if err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits for an event of a kind whose detail contains want.
func waitEvent(t *testing.T, ctx context.Context, f *Federation, jobID, kind, want string) {
	t.Helper()
	eventually(t, 20*time.Second, kind+" event saying "+want, func() bool {
		resp, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{JobId: jobID, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Events {
			if e.Kind == kind && strings.Contains(e.Detail, want) {
				return true
			}
		}
		return false
	})
}

// TestValidationGatesAndReceipts drives a validation site by hand: it is
// only ever asked to validate, cannot upload an update, forged or
// mismatched receipts are refused, and the gate publishes or rejects on
// the receipts that verify; a silent validation site rejects the
// candidate at the receipt deadline.
func TestValidationGatesAndReceipts(t *testing.T) {
	f, ctx, v := validatedFederation(t)
	const spec = "name: gated\nrounds: 1\nmin_sites: 2\nvalidation_sites: [site-v]\nround_deadline: 60s\nprivacy: {secure_aggregation: none}\n"
	other, err := f.Kit(pki.RoleSite, "site-a")
	if err != nil {
		t.Fatal(err)
	}
	vKey, aKey := kitKey(t, v.kit), kitKey(t, other)

	// A candidate below the gate is kept, rejected, and publishes nothing.
	job := submit(t, ctx, f, spec+"validation: {min_auc: 0.9, receipt_deadline: 60s}\n")
	task := v.task(t)
	if task.Kind != pb.TaskKind_TASK_KIND_VALIDATE || task.ModelRole != "global" || len(task.ModelSha256) != 64 {
		t.Fatalf("validation site got %v (role %q, digest %q), want a VALIDATE task for the global model", task.Kind, task.ModelRole, task.ModelSha256)
	}
	if err := v.send(ctx, &pb.UploadHeader{JobId: job.Id, Round: task.Round, Nonce: task.Nonce, Kind: pb.UploadKind_UPLOAD_KIND_UPDATE,
		SampleCount: 1}, make([]byte, 4*64)); err == nil {
		t.Fatal("a validation site uploaded a training update")
	}
	v.report(t, task, aKey, nil)
	waitEvent(t, ctx, f, job.Id, "validation.refused", "does not verify")
	v.report(t, task, vKey, func(r *receipt.Receipt) { r.ModelSHA256 = strings.Repeat("0", 64) })
	waitEvent(t, ctx, f, job.Id, "validation.refused", "names another model")
	v.report(t, task, vKey, func(r *receipt.Receipt) { r.Assessment = assessment(0.6) })
	final := watchToEnd(t, ctx, f, job.Id)
	if final.ModelVersion != "" || final.Gate.GetState() != "rejected" || !strings.Contains(strings.Join(final.Gate.Reasons, ";"), "site-v") {
		t.Fatalf("below the gate: model %q, gate %v", final.ModelVersion, final.Gate)
	}
	v.report(t, task, vKey, nil) // a replay after the answer changes nothing
	v.report(t, &pb.Task{TaskId: job.Id + "/validate/9/global/site-v", JobId: job.Id, Round: 9, Nonce: task.Nonce, ModelRole: "global",
		ModelSha256: task.ModelSha256}, vKey, func(r *receipt.Receipt) { r.Round = 9 })
	waitEvent(t, ctx, f, job.Id, "validation.refused", "no unanswered validation task")
	if again := getJob(t, ctx, f, job.Id); again.Gate.GetState() != "rejected" || len(again.Rounds[0].Validation) != 1 {
		t.Fatalf("a replayed receipt changed the job: gate %v, validation %v", again.Gate, again.Rounds[0].Validation)
	}
	list, err := f.Admin.ListModels(ctx, &pb.ListModelsRequest{})
	if err != nil || len(list.Models) != 0 {
		t.Fatalf("published versions after a rejection: %v, %v", list.GetModels(), err)
	}
	cand, err := f.Admin.GetModelInfo(ctx, &pb.GetModelRequest{Version: final.Gate.Version})
	if err != nil || cand.Status != registry.StatusRejected || len(cand.GateReasons) == 0 || len(cand.Manifest) == 0 {
		t.Fatalf("rejected candidate %s: %v, %v", final.Gate.Version, cand, err)
	}

	// A candidate that passes is published with its receipts.
	job = submit(t, ctx, f, spec+"validation: {min_auc: 0.9}\n")
	task = v.task(t)
	v.report(t, task, vKey, nil)
	final = watchToEnd(t, ctx, f, job.Id)
	if final.ModelVersion != "v1" || final.Gate.GetState() != "passed" {
		t.Fatalf("above the gate: model %q, gate %v", final.ModelVersion, final.Gate)
	}
	mv, err := f.Admin.GetModelInfo(ctx, &pb.GetModelRequest{Version: "v1"})
	if err != nil || mv.Status != registry.StatusPublished || !strings.HasPrefix(mv.DeviceUid, "2.25.") || len(mv.Validation) != 1 ||
		mv.Validation[0].Metrics["auc"] != 0.95 || mv.Parent != "" {
		t.Fatalf("published v1: %v, %v", mv, err)
	}
	if len(final.Rounds) != 1 || len(final.Rounds[0].Validation) != 1 || final.CrossSite == nil || len(final.CrossSite.Cells) != 1 {
		t.Fatalf("job shows validation %v, cross-site %v", final.Rounds, final.CrossSite)
	}
	for _, r := range final.Rounds {
		for _, s := range r.Contributors {
			if s == "site-v" {
				t.Fatal("the validation site contributed to training")
			}
		}
	}

	// A silent validation site fails the gate at the deadline.
	job = submit(t, ctx, f, spec+"validation: {receipt_deadline: 2s}\n")
	v.task(t)
	final = watchToEnd(t, ctx, f, job.Id)
	if final.ModelVersion != "" || !strings.Contains(strings.Join(final.Gate.GetReasons(), ";"), "no signed validation receipt from site site-v") {
		t.Fatalf("silent validation site: model %q, gate %v", final.ModelVersion, final.Gate)
	}
}

// TestCrossSiteMatrix: without secure aggregation, and when the spec asks
// for it, each training site's last local model is scored at the
// validation sites too; only they (and the site it came from) may read it.
func TestCrossSiteMatrix(t *testing.T) {
	f, ctx, v := validatedFederation(t)
	vKey := kitKey(t, v.kit)
	job := submit(t, ctx, f, "name: matrix\nrounds: 1\nmin_sites: 2\nvalidation_sites: [site-v]\nround_deadline: 60s\n"+
		"privacy: {secure_aggregation: none}\nvalidation: {score_local_models: true}\n")
	roles := map[string]*pb.Task{}
	for range 3 {
		task := v.task(t)
		roles[task.ModelRole] = task
	}
	for _, role := range []string{"global", "site:site-a", "site:site-b"} {
		if roles[role] == nil {
			t.Fatalf("no validation task for the %s model: %v", role, roles)
		}
	}
	// Site b may not read site a's local model.
	kit, err := f.Kit(pki.RoleSite, "site-b")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := f.Dial(kit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := pb.NewAgentClient(conn).Download(ctx, &pb.DownloadRequest{Blob: roles["site:site-a"].InputBlob})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("site-b read site-a's local model: %v", err)
	}
	st, err = v.agent.Download(ctx, &pb.DownloadRequest{Blob: roles["site:site-a"].InputBlob})
	if err == nil {
		_, err = st.Recv()
	}
	if err != nil {
		t.Fatalf("the validation site cannot read the local model it must score: %v", err)
	}
	for _, task := range roles {
		v.report(t, task, vKey, nil)
	}
	final := watchToEnd(t, ctx, f, job.Id)
	m := final.CrossSite
	if final.ModelVersion == "" || m == nil || len(m.Cells) != 3 || len(m.Models) != 3 || m.Note != "" {
		t.Fatalf("cross-site matrix %v (model %q)", m, final.ModelVersion)
	}
}

// validatedFederation runs two real training agents (site-a, site-b) and a
// hand-driven validation site, site-v.
func validatedFederation(t *testing.T) (*Federation, context.Context, *rawSite) {
	t.Helper()
	f, ctx := startFederation(t)
	for i, name := range []string{"site-a", "site-b"} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(48, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	v := newRawSite(t, ctx, f, "site-v")
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	return f, ctx, v
}
