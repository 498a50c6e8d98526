package siteagent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCountFeedback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "feedback")
	if n, err := countFeedback(dir, time.Time{}); n != 0 || err != nil {
		t.Fatalf("no feedback folder yet: %d, %v; want 0 and no error", n, err)
	}
	writeTree(t, dir, "lesion/"+patient+"/1.dcm", "lesion/2.dcm", "normal/3.dcm", "normal/.partial.dcm", "stray.dcm")
	baseline := time.Now().Add(-time.Hour)
	old := baseline.Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "normal/3.dcm"), old, old); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		since time.Time
		want  int
	}{
		{time.Time{}, 3}, // every correction in a class folder; not hidden files, not files outside a class
		{baseline, 2},    // the one trained on before the baseline is not counted again
		{time.Now().Add(time.Hour), 0},
	}
	for _, c := range cases {
		if n, err := countFeedback(dir, c.since); n != c.want || err != nil {
			t.Errorf("since %v: %d, %v; want %d", c.since, n, err, c.want)
		}
	}
}

// TestFeedbackIsTrainedOn: the training data includes the feedback folder's
// corrections, labelled by their class folder, and a correction that
// arrives later is in the next load although the pipeline is the same.
func TestFeedbackIsTrainedOn(t *testing.T) {
	root := t.TempDir()
	spec := driftSpec(t)
	scanner(t, filepath.Join(root, "data", "normal"), 3, 1, "", 1)
	scanner(t, filepath.Join(root, "data", "lesion"), 3, 1, "", 2)
	fb := filepath.Join(root, "feedback")
	scanner(t, filepath.Join(fb, "lesion", "study"), 2, 1, "", 3)
	scanner(t, filepath.Join(fb, "unsure"), 1, 1, "", 4) // not a class of the job
	d := &DICOMFolder{Dir: filepath.Join(root, "data"), Classes: []string{"normal", "lesion"}, Feedback: fb}
	ds, err := d.Dataset(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	lesions := 0
	for _, y := range ds.Y {
		lesions += y
	}
	if ds.N != 8 || lesions != 5 || d.Rejected["feedback in a class the data folder does not have"] != 1 {
		t.Fatalf("%d examples, %d lesions, rejected %v; want 6 + 2 corrections, 3 + 2 lesions, 1 outside the classes", ds.N, lesions, d.Rejected)
	}
	if n, _ := d.Check(); n != 6 {
		t.Errorf("Check counts %d examples; the data folder holds 6 (feedback is reported apart)", n)
	}
	scanner(t, filepath.Join(fb, "normal"), 1, 1, "", 5)
	ds, err = d.Dataset(context.Background(), spec)
	if err != nil || ds.N != 9 {
		t.Fatalf("after one more correction: %d examples, %v; want 9", ds.N, err)
	}
	if len(d.cache) != 1 {
		t.Errorf("%d datasets cached for one pipeline; the one without the new correction should be dropped", len(d.cache))
	}
	d.Feedback = filepath.Join(root, "none")
	if ds, err = d.Dataset(context.Background(), spec); err != nil || ds.N != 6 {
		t.Fatalf("a missing feedback folder: %d examples, %v; want the data folder's 6", ds.N, err)
	}
}
