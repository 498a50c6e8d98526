package siteagent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/concord-fl/concord/evaluation/receipt"
	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestValidateSegmentationReceipt: a validation site of a unet job scores
// the model on its images and masks and signs a receipt whose metrics are
// Dice and IoU with their intervals, the same as scoring here, over the
// data manifest of images and masks.
func TestValidateSegmentationReceipt(t *testing.T) {
	p, cfg := startPeer(t)
	dir := t.TempDir()
	for i := range 6 {
		writeSlice(t, dir, fmt.Sprintf("s%d", i), i, 32)
	}
	cfg.Data = &SegFolder{Dir: dir}
	spec := segSpec(t, 32)
	spec.Seed, spec.ValidationSites = 3, []string{"st-marys"}
	m, model := validationModel(t, spec)
	p.serve(model, func(pb.Agent_UploadServer) error { return errors.New("a validation site uploaded") })
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runStarted(t, a)
	<-p.hello
	task := validateTask(spec, m, model)
	p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
	rep := next(t, p, (*pb.AgentMessage).GetValidation, func(r *pb.ValidationReport) bool { return r != nil })
	leaf, err := x509.ParseCertificate(cfg.TLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Verify(rep.Receipt, leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	data, err := (&SegFolder{Dir: dir}).Dataset(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	want, err := assess(m, data, jobspec.AssessOptions(spec))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := r.Assessment.Metrics["dice"]
	if r.Assessment.Task != "segmentation" || !ok || d != want.Metrics["dice"] || r.Assessment.Examples != 6 ||
		!(d.Lower <= d.Value && d.Value <= d.Upper) {
		t.Fatalf("receipt %+v, want dice %+v", r.Assessment, want.Metrics["dice"])
	}
	if _, ok := r.Assessment.Metrics["auc"]; ok {
		t.Fatal("a segmentation receipt carries AUC")
	}
	if r.DataManifest != DataManifest(data) {
		t.Fatal("the receipt's data manifest is not that of the images and masks")
	}
}
