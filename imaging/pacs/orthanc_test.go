package pacs

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testorthanc"
)

// corpusFiles are shared pydicom files with distinct SOP Instance UIDs:
// CT, MR, US, NM, OT and SR, several transfer syntaxes, one file our
// reader rejects (badVR.dcm) and one without pixel data (test-SR.dcm).
var corpusFiles = []string{"CT_small.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm", "MR_small.dcm",
	"examples_overlay.dcm", "ExplVR_BigEnd.dcm", "examples_jpeg2k.dcm", "examples_ybr_color.dcm",
	"SC_rgb_dcmtk_+eb+cr.dcm", "JPEG2000.dcm", "badVR.dcm", "test-SR.dcm", "GDCMJ2K_TextGBR.dcm"}

// corpus is what a test PACS holds: each instance's bytes as uploaded,
// and the file name of each series (one instance per series here).
type corpus struct {
	orthanc  *testorthanc.Orthanc
	bySOP    map[string][]byte
	seriesOf map[string]string // series UID → file name
	bytes    int64
}

func loadCorpus(t *testing.T) *corpus {
	t.Helper()
	dir := testenv.Shared(t, "data/dicom/pydicom")
	o := testorthanc.Start(t, testorthanc.Options{})
	c := &corpus{orthanc: o, bySOP: map[string][]byte{}, seriesOf: map[string]string{}}
	for _, name := range corpusFiles {
		p := filepath.Join(dir, name)
		o.Upload(t, p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := imaging.Parse(b, imaging.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.bySOP[f.Data.String(imaging.NewTag(0x0008, 0x0018))] = b
		c.seriesOf[f.Data.String(imaging.NewTag(0x0020, 0x000E))] = name
		c.bytes += int64(len(b))
	}
	return c
}

// proxy stands between a Source and Orthanc and counts: every request's
// path, and the most requests in flight at once.
type proxy struct {
	*httptest.Server
	mu       sync.Mutex
	paths    []string
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func newProxy(t *testing.T, target string) *proxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.inFlight.Add(1)
		defer p.inFlight.Add(-1)
		for {
			m := p.maxIn.Load()
			if n <= m || p.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		p.mu.Lock()
		p.paths = append(p.paths, r.URL.Path)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// requests returns the paths seen since the last call.
func (p *proxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.paths
	p.paths = nil
	return out
}

// retrievals are the WADO-RS requests among paths: series and instance
// retrievals, by their last UID.
func retrievals(paths []string) (series, instances []string) {
	for _, p := range paths {
		parts := strings.Split(p, "/")
		switch {
		case len(parts) >= 2 && parts[len(parts)-2] == "series":
			series = append(series, parts[len(parts)-1])
		case len(parts) >= 2 && parts[len(parts)-2] == "instances":
			instances = append(instances, parts[len(parts)-1])
		}
	}
	return series, instances
}

func openDICOMweb(t *testing.T, root string, opts Options) Source {
	t.Helper()
	s, err := Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// syntheticSeries uploads one series of n small synthetic instances and
// returns their bytes by SOP Instance UID.
func syntheticSeries(t testing.TB, o *testorthanc.Orthanc, n, size int) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	out := map[string][]byte{}
	for i := range n {
		px := make([]uint16, size*size)
		for j := range px {
			px[j] = uint16((i*7 + j*13) % 4096)
		}
		sop := fmt.Sprintf("2.25.2%05d", i)
		p := filepath.Join(dir, fmt.Sprintf("%d.dcm", i))
		err := imaging.WriteFile(p, imaging.SyntheticFile{Pixels: px, Rows: size, Columns: size, BitsStored: 12, Modality: "CR",
			StudyInstanceUID: "2.25.1000", SeriesInstanceUID: "2.25.1001", SOPInstanceUID: sop, StudyDate: "20240101"})
		if err != nil {
			t.Fatal(err)
		}
		o.Upload(t, p)
		if out[sop], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
