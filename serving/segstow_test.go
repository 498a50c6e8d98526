package serving

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/internal/testorthanc"
)

// TestSEGStoredInThePACSThroughAnOutage serves the dcmqi CT series with a
// SEG store set to a real Orthanc behind a proxy that answers 503 until
// the PACS is "up": the SEG waits in its queue, is stored once the PACS
// answers, and is then found in the PACS by QIDO-RS; the same study sent
// again leaves one SEG instance there.
func TestSEGStoredInThePACSThroughAnOutage(t *testing.T) {
	o := testorthanc.Start(t, testorthanc.Options{})
	target, err := url.Parse(o.URL)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(target)
	pacs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "PACS in maintenance", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(pacs.Close)

	s := newSegSite(t)
	srv := s.start(t, &recorder{}, func(c *Config) { c.SEGStore = pacs.URL + "/dicom-web/" })
	addr := "http://" + srv.Addr().String()
	if status, ds := stow(t, addr, ctSlices(t)...); status != http.StatusOK {
		t.Fatalf("STOW-RS %d %v", status, ds)
	}
	waitFor(t, func() bool {
		it, ok, _ := s.store.segHead()
		return ok && it.Attempts >= 2
	}, "retries while the PACS is down")
	if c, _ := s.store.Counts(); c.SEGQueued != 1 || c.SEGStored != 0 {
		t.Fatalf("while the PACS is down: %+v, want the SEG queued", c)
	}
	it, _, _ := s.store.segHead()
	up.Store(true)
	t.Cleanup(func() {
		if t.Failed() {
			c, _ := s.store.Counts()
			h, ok, _ := s.store.segHead()
			t.Logf("counts %+v; head %v %+v", c, ok, h)
			s.store.db.View(func(tx *bolt.Tx) error {
				return tx.Bucket(bSEGParked).ForEach(func(_, v []byte) error { t.Logf("parked SEG: %s", v); return nil })
			})
		}
	})
	waitFor(t, func() bool { c, _ := s.store.Counts(); return c.SEGStored == 1 && c.SEGQueued == 0 }, "the SEG stored")
	if n := pacsInstances(t, o.DICOMweb, it.SOPInstanceUID); n != 1 {
		t.Fatalf("QIDO-RS finds %d instances of the SEG in the PACS, want 1", n)
	}
	// The same study again: the same SEG instance, kept once by the PACS.
	if status, _ := stow(t, addr, ctSlices(t)...); status != http.StatusOK {
		t.Fatal("second STOW-RS failed")
	}
	waitFor(t, func() bool { c, _ := s.store.Counts(); return c.SEGStored == 2 }, "the SEG stored again")
	if n := pacsInstances(t, o.DICOMweb, it.SOPInstanceUID); n != 1 {
		t.Fatalf("after the study was sent twice the PACS has %d instances of the SEG, want 1", n)
	}
	if c, _ := s.store.Counts(); c.SEGParked != 0 {
		t.Fatalf("parked SEGs: %+v", c)
	}
}

// pacsInstances counts the instances with that SOP Instance UID and
// modality SEG that the PACS's QIDO-RS finds.
func pacsInstances(t testing.TB, dicomweb, uid string) int {
	t.Helper()
	resp, err := http.Get(dicomweb + "/instances?SOPInstanceUID=" + url.QueryEscape(uid) + "&Modality=SEG")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return 0
	}
	var found []map[string]any
	if err := json.Unmarshal(b, &found); err != nil {
		t.Fatalf("QIDO-RS %s: %.200s", resp.Status, b)
	}
	return len(found)
}

// TestSEGStoreRefusedWhereItCannotBeHonoured: a SEG store needs a
// segmentation model and a DICOMweb URL.
func TestSEGStoreRefusedWhereItCannotBeHonoured(t *testing.T) {
	s := newSegSite(t)
	m, err := s.load(t)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{WatchDir: t.TempDir(), StateDir: s.state, PatientIDSystem: "urn:oid:1.2", Model: m, Store: s.store, Sender: &recorder{}}
	for _, bad := range []string{"ftp://pacs/dicom-web", "pacs:8042", "http:///x"} {
		cfg.SEGStore = bad
		if _, err := New(cfg); err == nil {
			t.Errorf("SEG store %q accepted", bad)
		}
	}
	c := newSite(t)
	c.approve(t, "v1")
	mc, err := c.load(t)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Model, cfg.Store, cfg.Classes, cfg.SEGStore = mc, c.store, []string{"normal", "pneumonia"}, "http://127.0.0.1:1/dicom-web"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "classifier") {
		t.Fatalf("a SEG store with a classifier: %v, want it refused", err)
	}
}

func TestSTOWStoredReadsTheResponseDataset(t *testing.T) {
	ok := `{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]}}]}}`
	for _, tc := range []struct {
		body string
		want bool
	}{
		{ok, true},
		{`{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.4"]}}]}}`, false},
		{`{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]}}]},"00081198":{"vr":"SQ","Value":[{}]}}`, false},
		{`<NativeDicomModel/>`, false},
		{``, false},
	} {
		if got := stowStored([]byte(tc.body), "1.2.3"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.body, got, tc.want)
		}
	}
}
