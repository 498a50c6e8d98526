package pacs

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestTimeouts: a PACS that never answers, and one that stops in the
// middle of a retrieval, end in an error naming the PACS and the wait.
func TestTimeouts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := make(chan net.Conn, 16) // accepted, held open, never answered
	defer func() {
		l.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c:
			default:
				c.Close()
			}
		}
	}()
	silent := "http://" + l.Addr().String() + "/dicom-web"
	src := openDICOMweb(t, silent, Options{Timeout: 300 * time.Millisecond})
	_, err = src.FindSeries(context.Background(), Query{})
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") || !strings.Contains(err.Error(), silent) {
		t.Errorf("silent PACS: %v", err)
	}

	stall := make(chan struct{})
	defer close(stall)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=B`)
		w.Write([]byte("--B\r\nContent-Type: application/dicom\r\n\r\nDICM"))
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	src = openDICOMweb(t, srv.URL, Options{Timeout: 300 * time.Millisecond})
	err = src.Retrieve(context.Background(), Series{StudyInstanceUID: "1", SeriesInstanceUID: "2"}, func(string, []byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") || !strings.Contains(err.Error(), "retrieve series") {
		t.Errorf("stalled retrieval: %v", err)
	}
}
