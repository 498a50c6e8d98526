package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// recorder keeps the bundles it is given; the deliverer's ordering and
// retries are tested against it, FHIR itself in the end-to-end tests.
type recorder struct {
	mu      sync.Mutex
	bundles [][]byte
}

func (r *recorder) Deliver(_ context.Context, b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bundles = append(r.bundles, b)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bundles)
}

func TestSTOWStoresReadableInstancesAndReportsBrokenOnes(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	rec := &recorder{}
	srv := s.start(t, rec, nil)
	url := "http://" + srv.Addr().String()
	ct, mr := readFile(t, pydicom(t, "CT_small.dcm")), readFile(t, pydicom(t, "MR_small.dcm"))
	status, ds := stow(t, url, ct, mr, readFile(t, pydicom(t, "MR_truncated.dcm")), []byte("not dicom"))
	if status != http.StatusAccepted {
		t.Fatalf("status %d, want 202 (some failed): %v", status, ds)
	}
	stored, failed := seq(ds, tagReferencedSOPSeq), seq(ds, tagFailedSOPSeq)
	if len(stored) != 2 || len(failed) != 2 {
		t.Fatalf("stored %d failed %d, want 2 and 2: %v", len(stored), len(failed), ds)
	}
	for _, f := range failed {
		if value(f, tagFailureReason) != float64(ReasonCannotParse) || value(f, tagErrorComment) == nil {
			t.Errorf("failed item %v: want reason 0xC000 and a comment", f)
		}
	}
	ids := map[any]bool{}
	for _, it := range stored {
		if value(it, tagReferencedSOPInst) == nil || value(it, tagResultID) == nil {
			t.Errorf("stored item %v lacks its SOP instance UID or result id", it)
		}
		ids[value(it, tagResultID)] = true
	}
	if len(ids) != 2 {
		t.Fatalf("two studies gave result ids %v", ids)
	}
	waitFor(t, func() bool { return rec.count() == 2 }, "two bundles delivered")
	log, err := s.store.AuditLog()
	if err != nil || len(log) != 2 {
		t.Fatalf("audit log %v %v, want 2 inference records", log, err)
	}
	raw, _ := json.Marshal(log)
	for _, uid := range []string{"1.3.6.1.4.1.5962"} { // the studies' UID root: only hashes may appear
		if bytes.Contains(raw, []byte(uid)) {
			t.Fatalf("the audit log holds a study UID: %s", raw)
		}
	}
	// All broken: 409; a non-DICOM multipart type: 415.
	if status, ds := stow(t, url, []byte("junk")); status != http.StatusConflict || len(seq(ds, tagFailedSOPSeq)) != 1 {
		t.Fatalf("all failed: status %d %v, want 409 with one failed item", status, ds)
	}
	resp, err := http.Post(url+"/dicomweb/studies", `multipart/related; type="application/dicom+json"; boundary=x`, strings.NewReader("--x--"))
	if err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("metadata request: %v %v, want 415", resp.Status, err)
	}
}

func TestSTOWBounds(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	srv := s.start(t, &recorder{}, func(c *Config) { c.MaxRequestBytes, c.MaxParts = 64<<10, 2 })
	url := "http://" + srv.Addr().String()
	ct := readFile(t, pydicom(t, "CT_small.dcm")) // 39 KB
	if status, ds := stow(t, url, ct, ct); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the byte bound: %d %v, want 413", status, ds)
	}
	small := []byte("x")
	if status, ds := stow(t, url, small, small, small); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the part bound: %d %v, want 413", status, ds)
	}
}

func TestFeedbackWritesALabelledExample(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	srv := s.start(t, &recorder{}, nil)
	url := "http://" + srv.Addr().String()
	_, ds := stow(t, url, readFile(t, pydicom(t, "CT_small.dcm")))
	id := value(seq(ds, tagReferencedSOPSeq)[0], tagResultID).(string)
	post := func(body string) *http.Response {
		resp, err := http.Post(url+"/feedback", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(`{"result_id":"nope","verdict":"agree"}`); r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown result: %s", r.Status)
	}
	if r := post(fmt.Sprintf(`{"result_id":%q,"verdict":"corrected","label":"fracture"}`, id)); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown label: %s", r.Status)
	}
	if r := post(fmt.Sprintf(`{"result_id":%q,"verdict":"corrected","label":"pneumonia"}`, id)); r.StatusCode != http.StatusOK {
		t.Fatalf("corrected: %s", r.Status)
	}
	files, _ := filepath.Glob(filepath.Join(s.feedback, "pneumonia", id+"-*.dcm"))
	if len(files) != 1 || !bytes.Equal(readFile(t, files[0]), readFile(t, pydicom(t, "CT_small.dcm"))) {
		t.Fatalf("feedback files %v, want the study's one instance under pneumonia/", files)
	}
	if r := post(fmt.Sprintf(`{"result_id":%q,"verdict":"agree"}`, id)); r.StatusCode != http.StatusConflict {
		t.Fatalf("second feedback: %s, want 409", r.Status)
	}
	c, _ := s.store.Counts()
	log, err := s.store.AuditLog()
	if c.Feedback != 1 || err != nil || len(log) != 2 || log[1].Event != "feedback" {
		t.Fatalf("counts %+v, log %+v %v", c, log, err)
	}
}

func TestWatchedFolder(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	watch := filepath.Join(t.TempDir(), "incoming")
	os.MkdirAll(watch, 0o755)
	rec := &recorder{}
	s.start(t, rec, func(c *Config) { c.Listen, c.WatchDir, c.WatchInterval = "", watch, 50*time.Millisecond })
	os.WriteFile(filepath.Join(watch, "a.dcm"), readFile(t, pydicom(t, "MR_small.dcm")), 0o644)
	os.WriteFile(filepath.Join(watch, "b.dcm"), []byte("broken"), 0o644)
	waitFor(t, func() bool { return rec.count() == 1 }, "the watched study delivered")
	waitFor(t, func() bool {
		_, e1 := os.Stat(filepath.Join(watch, ProcessedDir, "a.dcm"))
		_, e2 := os.Stat(filepath.Join(watch, FailedDir, "b.dcm.reason"))
		return e1 == nil && e2 == nil
	}, "a.dcm in processed/, b.dcm in failed/ with its reason")
}

func TestAuditLogDetectsARewrite(t *testing.T) {
	s := newSite(t)
	for i := range 3 {
		if err := s.store.feedbackAudit(AuditRecord{Event: "inference", ResultID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.store.AuditLog(); err != nil {
		t.Fatal(err)
	}
	s.store.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bAudit)
		var r AuditRecord
		json.Unmarshal(b.Get(seqKey(2)), &r)
		r.ResultID = "other"
		v, _ := json.Marshal(r)
		return b.Put(seqKey(2), v)
	})
	if _, err := s.store.AuditLog(); err == nil || !strings.Contains(err.Error(), "record 2") {
		t.Fatalf("rewritten record: %v, want record 2 named", err)
	}
}

func waitFor(t testing.TB, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestResultsPastTheFeedbackWindowAreForgotten(t *testing.T) {
	s := newSite(t)
	s.approve(t, "v1")
	srv := s.start(t, &recorder{}, nil)
	_, ds := stow(t, "http://"+srv.Addr().String(), readFile(t, pydicom(t, "CT_small.dcm")))
	id := value(seq(ds, tagReferencedSOPSeq)[0], tagResultID).(string)
	dir := filepath.Join(s.state, "serve", "studies", id)
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	ids, err := s.store.pruneResults(time.Now().Add(time.Minute))
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("pruned %v %v", ids, err)
	}
	if _, ok, _ := s.store.result(id); ok {
		t.Fatal("the result is still there")
	}
}
