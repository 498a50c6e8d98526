package siteagent

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/evaluation/receipt"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// validationSpec is a small binary job whose validation reports subgroups
// of five or more and the sensitivity at 80% specificity.
func validationSpec() *pb.JobSpec {
	return &pb.JobSpec{Seed: 11,
		Model:           &pb.ModelSpec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2},
		Pipeline:        &pb.PipelineSpec{Width: 28, Height: 28, Channels: 1, Resample: "area", Normalise: "zscore"},
		Validation:      &pb.ValidationSpec{AtSpecificity: 0.8, MinSubgroupCount: 5},
		ValidationSites: []string{"st-marys"}}
}

// writeValidationFolder writes 48 DICOM images in two class folders; the
// lesions are brighter in the middle, and the headers carry sex, age and
// two scanner models (and identifiers, which must go nowhere).
func writeValidationFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "xrays")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 48 {
		class := []string{"normal", "lesion"}[i%2]
		px := make([]uint16, 32*32)
		for j := range px {
			px[j] = uint16(1000 + rng.IntN(200))
			if r, c := j/32, j%32; class == "lesion" && r > 10 && r < 22 && c > 10 && c < 22 {
				px[j] += 300
			}
		}
		f := imaging.SyntheticFile{Pixels: px, Rows: 32, Columns: 32, Modality: "DX",
			PatientName: fmt.Sprintf("ZZTEST^PATIENT%d", i), PatientID: fmt.Sprintf("MRN%06d", i), PatientBirthDate: "19600101",
			PatientSex: []string{"F", "M", "F"}[i%3], PatientAge: []string{"030Y", "050Y", "070Y", "012Y"}[i%4],
			Manufacturer: "Acme", ManufacturerModelName: []string{"SYNTH-DR 200", "SYNTH-DR 400"}[i/44],
			StudyInstanceUID: fmt.Sprintf("1.2.3.%d", i+1), SeriesInstanceUID: fmt.Sprintf("1.2.3.%d.1", i+1), SOPInstanceUID: fmt.Sprintf("1.2.3.%d.1.1", i+1)}
		path := filepath.Join(dir, class, fmt.Sprintf("p%02d", i), "1.dcm")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := imaging.WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// validationModel is the job's model with its seed's weights, encoded as
// the coordinator serves it.
func validationModel(t *testing.T, spec *pb.JobSpec) (*learning.Model, []byte) {
	t.Helper()
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed+1)
	if err != nil {
		t.Fatal(err)
	}
	return m, learning.EncodeWeights(m.Weights())
}

func validateTask(spec *pb.JobSpec, m *learning.Model, model []byte) *pb.Task {
	sum := sha256.Sum256(model)
	return &pb.Task{TaskId: "job-1/validate/global/3", Kind: pb.TaskKind_TASK_KIND_VALIDATE, JobId: "job-1", Round: 3, Spec: spec,
		Nonce: []byte("validation nonce"), InputBlob: "model/job-1/3", InputParams: uint64(len(m.Weights())),
		LayoutHash: m.Layout().Hash(), ModelRole: "global", ModelSha256: hex.EncodeToString(sum[:])}
}

// TestValidateSendsSignedReceipt: a VALIDATE task is answered with a
// report whose receipt verifies with the site certificate's key and holds
// the Assessment of the same model on the same data, subgroups from the
// DICOM headers included; nothing else is sent, and the sent log shows it.
func TestValidateSendsSignedReceipt(t *testing.T) {
	p, cfg := startPeer(t)
	dir := writeValidationFolder(t)
	cfg.Data = &DICOMFolder{Dir: dir, Classes: []string{"normal", "lesion"}}
	spec := validationSpec()
	m, model := validationModel(t, spec)
	var uploads atomic.Int32
	p.serve(model, func(pb.Agent_UploadServer) error {
		uploads.Add(1)
		return errors.New("a validation site uploaded")
	})
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runStarted(t, a)
	<-p.hello
	task := validateTask(spec, m, model)
	p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
	rep := next(t, p, (*pb.AgentMessage).GetValidation, func(r *pb.ValidationReport) bool { return r != nil })
	if rep.TaskId != task.TaskId || rep.JobId != "job-1" || rep.Round != 3 || string(rep.Nonce) != string(task.Nonce) {
		t.Fatalf("report %+v", rep)
	}
	leaf, err := x509.ParseCertificate(cfg.TLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Verify(rep.Receipt, leaf.PublicKey)
	if err != nil {
		t.Fatalf("receipt does not verify with the site certificate: %v", err)
	}

	// The same model on the same data, scored here.
	data, err := (&DICOMFolder{Dir: dir, Classes: []string{"normal", "lesion"}}).Dataset(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Predict(data)
	if err != nil {
		t.Fatal(err)
	}
	scores := make([]float64, data.N)
	for i := range scores {
		scores[i] = clamp01(out[2*i+1])
	}
	want, err := evaluation.AssessBinary(scores, data.Y, data.Groups, evaluation.AssessOptions{AtSpecificity: 0.8, MinSubgroup: 5})
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(r.Assessment)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("assessment in the receipt:\n%s\nAssessBinary on the same data:\n%s", gotJSON, wantJSON)
	}
	if r.Site != "st-marys" || r.JobID != "job-1" || r.Round != 3 || r.ModelRole != "global" || r.ModelSHA256 != task.ModelSha256 ||
		r.DataManifest != DataManifest(data) || r.PipelineHash != jobspec.PipelineConfig(spec).Hash() {
		t.Fatalf("receipt %+v", r)
	}
	subs := map[string]evaluation.Subgroup{}
	for _, g := range r.Assessment.Subgroups {
		subs[g.Field+"="+g.Value] = g
	}
	// The 4 images of the second scanner model are below the minimum of
	// 5, and the first model's 44 are hidden with them (the total would
	// give the 4 away).
	for key, n := range map[string]int{"sex=F": 32, "sex=M": 16, "age=0-17": 12, "age=65+": 12, "model=SYNTH-DR 200": 0, "model=SYNTH-DR 400": 0} {
		if g, ok := subs[key]; !ok || g.Examples != n || g.Suppressed != (n == 0) {
			t.Errorf("subgroup %s: %+v, want %d examples", key, g, n)
		}
	}
	if _, ok := r.Assessment.Metrics["sensitivity_at_specificity"]; !ok || r.Assessment.Examples != 48 {
		t.Errorf("assessment %v", r.Assessment.Metrics)
	}
	for _, id := range []string{"ZZTEST", "MRN0000", "1.2.3.1", "p01"} {
		if strings.Contains(string(rep.Receipt), id) {
			t.Errorf("the receipt holds %q", id)
		}
	}
	stop()
	if n := uploads.Load(); n != 0 {
		t.Fatalf("%d uploads from a validation task", n)
	}
	sent, err := ReadSent(cfg.StateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(rep.Receipt)
	if len(sent) != 1 || sent[0].Kind != "VALIDATION_REPORT" || sent[0].SHA256 != hex.EncodeToString(sum[:]) ||
		sent[0].Bytes != int64(len(rep.Receipt)) || sent[0].ModelRole != "global" || sent[0].JobID != "job-1" {
		t.Fatalf("sent log %+v", sent)
	}
}

// TestValidateRefusals: a model that is not the one named, and a TRAIN
// task at a site the job names as a validation site, fail at once with a
// reason, and nothing is trained or sent.
func TestValidateRefusals(t *testing.T) {
	spec := validationSpec()
	m, model := validationModel(t, spec)
	wrong := validateTask(spec, m, model)
	wrong.ModelSha256 = strings.Repeat("ab", 32)
	train := trainTask("job-1", 1)
	train.Spec.ValidationSites = []string{"riverside", "st-marys"}
	badRole := validateTask(spec, m, model)
	badRole.TaskId, badRole.ModelRole = "job-1/validate/x", ""
	for _, c := range []struct {
		task *pb.Task
		want string
	}{
		{wrong, "refusing to score a model other than the one named"},
		{train, "this site is a validation site of job job-1: it never trains"},
		{badRole, "model role of 0 bytes"},
	} {
		t.Run(c.want, func(t *testing.T) {
			p, cfg := startPeer(t)
			cfg.Data = MemoryData{Data: learning.Dataset{N: 2, C: 1, H: 28, W: 28, X: make([]float32, 2*28*28), Y: []int{0, 1}}}
			tr := failingTrainer{err: errors.New("trained"), calls: make(chan struct{}, 8)}
			cfg.Trainer = tr
			p.serve(model, nil)
			runAgent(t, cfg)
			<-p.hello
			p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: c.task}}
			s := next(t, p, (*pb.AgentMessage).GetStatus, func(s *pb.TaskStatus) bool { return s != nil })
			if s.TaskId != c.task.TaskId || s.State != "failed" || !strings.Contains(s.Detail, c.want) {
				t.Fatalf("status %+v, want failed with %q", s, c.want)
			}
			if len(tr.calls) != 0 {
				t.Fatal("the agent trained")
			}
		})
	}
}

// TestReportOutbox: a report whose sending fails stays in the outbox and
// goes out, once, with the next stream; a report for the same task
// replaces the queued one.
func TestReportOutbox(t *testing.T) {
	st, err := openState(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	a := &Agent{st: st, log: slog.New(slog.DiscardHandler), reportReady: make(chan struct{}, 1)}
	a.queueReport(&pb.ValidationReport{TaskId: "t1", JobId: "j", Receipt: []byte("first")})
	a.queueReport(&pb.ValidationReport{TaskId: "t2", JobId: "j", Receipt: []byte("second")})
	a.queueReport(&pb.ValidationReport{TaskId: "t1", JobId: "j", Receipt: []byte("first again")})
	down := errors.New("stream broke")
	var got []string
	sends := 0
	send := func(m *pb.AgentMessage) error {
		sends++
		if sends == 2 {
			return down
		}
		got = append(got, string(m.GetValidation().Receipt))
		return nil
	}
	if err := a.sendReports(send); !errors.Is(err, down) {
		t.Fatalf("first stream: %v", err)
	}
	if err := a.sendReports(send); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "first again,second" || len(a.outbox) != 0 {
		t.Fatalf("sent %q, left %d", got, len(a.outbox))
	}
	if len(a.reportReady) != 1 {
		t.Fatal("queueing did not wake the sender")
	}
	a.queueReport(&pb.ValidationReport{TaskId: "t3", JobId: "cancelled", Receipt: []byte("third")})
	a.queueReport(&pb.ValidationReport{TaskId: "t4", JobId: "j", Receipt: []byte("fourth")})
	a.cancelJob("cancelled", "test")
	if len(a.outbox) != 1 || a.outbox[0].TaskId != "t4" {
		t.Fatalf("after the job was cancelled: %v", a.outbox)
	}
}

// TestDataManifest: the manifest names the examples, not their order, and
// changes with any pixel or label.
func TestDataManifest(t *testing.T) {
	d := learning.Dataset{N: 3, C: 1, H: 1, W: 2, X: []float32{1, 2, 3, 4, 5, 6}, Y: []int{0, 1, 0}}
	base := DataManifest(d)
	if shuffled := d.Subset([]int{2, 0, 1}); DataManifest(shuffled) != base {
		t.Error("the manifest depends on the order of the examples")
	}
	px := d.Subset([]int{0, 1, 2})
	px.X[3] = 4.0001
	lab := d.Subset([]int{0, 1, 2})
	lab.Y[2] = 1
	fewer := d.Subset([]int{0, 1})
	for name, o := range map[string]learning.Dataset{"pixel": px, "label": lab, "fewer": fewer} {
		if DataManifest(o) == base {
			t.Errorf("a changed %s leaves the manifest as it was", name)
		}
	}
	if len(base) != 64 {
		t.Errorf("manifest %q", base)
	}
}

func TestCheckValidateTask(t *testing.T) {
	spec := validationSpec()
	m, model := validationModel(t, spec)
	for _, c := range []struct {
		name   string
		change func(*pb.Task)
		want   string // "" = accepted
	}{
		{"valid", func(*pb.Task) {}, ""},
		{"no blob", func(t *pb.Task) { t.InputBlob = "" }, "no model named"},
		{"short sha", func(t *pb.Task) { t.ModelSha256 = "abcd" }, "model_sha256"},
		{"upper-case sha", func(t *pb.Task) { t.ModelSha256 = strings.ToUpper(t.ModelSha256) }, "model_sha256"},
		{"long role", func(t *pb.Task) { t.ModelRole = strings.Repeat("r", maxIDLen+1) }, "model role"},
		{"no model", func(t *pb.Task) { t.Spec = &pb.JobSpec{} }, "model section"},
	} {
		task := validateTask(spec, m, model)
		c.change(task)
		err := checkTask(task)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestAssessMulticlassModel: a model of more than two classes is scored
// with AssessMulticlass on its softmax outputs.
func TestAssessMulticlassModel(t *testing.T) {
	spec := validationSpec()
	spec.Model.Classes = 3
	m, _ := validationModel(t, spec)
	n := 30
	data := learning.Dataset{N: n, C: 1, H: 28, W: 28, X: make([]float32, n*784), Y: make([]int, n),
		Groups: map[string][]string{"sex": make([]string, n)}}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		data.Y[i] = i % 3
		data.Groups["sex"][i] = []string{"F", "M"}[i%2]
		for j := range 784 {
			data.X[i*784+j] = float32(rng.NormFloat64()) + float32(data.Y[i])
		}
	}
	got, err := assess(m, data, evaluation.AssessOptions{MinSubgroup: 5})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := m.Predict(data)
	probs := make([][]float64, n)
	for i := range probs {
		probs[i] = []float64{clamp01(out[3*i]), clamp01(out[3*i+1]), clamp01(out[3*i+2])}
	}
	want, err := evaluation.AssessMulticlass(probs, data.Y, data.Groups, evaluation.AssessOptions{MinSubgroup: 5})
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) || got.Task != "multiclass" || len(got.Subgroups) != 2 {
		t.Fatalf("assess:\n%s\nAssessMulticlass:\n%s", gj, wj)
	}
}
