package coordinator

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadyz: /readyz answers 503 with the reason until the gRPC server
// serves, 200 then, and 503 again after an overridden audit verification
// failure or once the state database is closed.
func TestReadyz(t *testing.T) {
	c := testCoordinator(t)
	probe := func() (int, string) {
		rec := httptest.NewRecorder()
		c.serveReadyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := probe(); code != 503 || !strings.Contains(body, "not serving") {
		t.Errorf("before serving: %d %q", code, body)
	}
	c.serving.Store(true)
	if code, body := probe(); code != 200 {
		t.Errorf("serving: %d %q", code, body)
	}
	c.auditBroken = errors.New("record 3: bad signature")
	if code, body := probe(); code != 503 || !strings.Contains(body, "audit log failed verification") {
		t.Errorf("broken audit log: %d %q", code, body)
	}
	c.auditBroken = nil
	c.st.Close()
	if code, body := probe(); code != 503 || !strings.Contains(body, "state database does not answer") {
		t.Errorf("database closed: %d %q", code, body)
	}
	rec := httptest.NewRecorder()
	c.serveHealthz(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("/healthz: %d", rec.Code)
	}
}
