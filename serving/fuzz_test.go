package serving

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"testing"
)

// FuzzSTOW feeds arbitrary multipart bodies to the STOW-RS handler: it
// must answer with one of its statuses, never panic, within its bounds.
func FuzzSTOW(f *testing.F) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.SetBoundary("b0undary")
	w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
	w.Write([]byte("DICM not really"))
	mw.Close()
	f.Add(body.Bytes())
	f.Add([]byte("--b0undary\r\n\r\n--b0undary--"))
	f.Add([]byte{})
	s := newSite(f)
	s.approve(f, "v1")
	srv := s.start(f, &recorder{}, func(c *Config) { c.Listen, c.WatchDir, c.MaxRequestBytes, c.MaxParts = "", "-", 1<<20, 8 })
	f.Fuzz(func(t *testing.T, b []byte) {
		req := httptest.NewRequest("POST", "/dicomweb/studies", bytes.NewReader(b))
		req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=b0undary`)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusConflict, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
