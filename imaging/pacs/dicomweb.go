package pacs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DICOMweb is a Source over DICOMweb: QIDO-RS to query, WADO-RS to
// retrieve. Every request passes one throttle; every response is bounded.
type DICOMweb struct {
	base   *url.URL // the service root, without a trailing slash
	name   string   // base with any password redacted: what errors say
	opts   Options
	client *http.Client
	thr    *throttle
}

// NewDICOMweb returns a Source for the DICOMweb service rooted at u. User
// and password in u are sent as HTTP basic authentication and never shown.
func NewDICOMweb(u *url.URL, opts Options) (*DICOMweb, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("pacs url %q: %w: no host", u.Redacted(), ErrUnsupported)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("pacs url %q: give the DICOMweb root without a query", u.Redacted())
	}
	opts = opts.withDefaults()
	b := *u
	b.Path = strings.TrimRight(b.Path, "/")
	b.RawPath = ""
	c := opts.Client
	if c == nil {
		c = &http.Client{Transport: http.DefaultTransport}
	}
	return &DICOMweb{base: &b, name: b.Redacted(), opts: opts, client: c,
		thr: newThrottle(opts.Concurrency, opts.RequestsPerSecond)}, nil
}

// Close implements Source.
func (d *DICOMweb) Close() error {
	d.client.CloseIdleConnections()
	return nil
}

// errorf names the PACS and the operation; the request path is left out
// because it holds study and series UIDs.
func (d *DICOMweb) errorf(op string, format string, args ...any) error {
	return fmt.Errorf("pacs %s: %s: %w", d.name, op, fmt.Errorf(format, args...))
}

// get sends one throttled GET to base+path. On success the caller reads the
// body and must call done; on failure get has released everything.
func (d *DICOMweb) get(ctx context.Context, op, path string, query url.Values, accept string) (*http.Response, func(), error) {
	release, err := d.thr.acquire(ctx)
	if err != nil {
		return nil, nil, d.errorf(op, "%w", err)
	}
	// Timeout bounds the wait for the answer and every stall while its body
	// is read, not the whole transfer: a large series may take longer.
	ctx, cancel := context.WithCancelCause(ctx)
	stalled := fmt.Errorf("no answer within %v", d.opts.Timeout)
	timer := time.AfterFunc(d.opts.Timeout, func() { cancel(stalled) })
	stop := func() { timer.Stop(); cancel(nil) }
	u := *d.base
	u.User = nil
	u.Path += path
	// DICOM wildcards go unescaped: Orthanc does not match %2A as *.
	u.RawQuery = strings.NewReplacer("%2A", "*", "%3F", "?").Replace(query.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		stop()
		release()
		return nil, nil, d.errorf(op, "%w", err)
	}
	req.Header.Set("Accept", accept)
	if ui := d.base.User; ui != nil {
		pw, _ := ui.Password()
		req.SetBasicAuth(ui.Username(), pw)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		if context.Cause(ctx) == stalled {
			err = stalled
		}
		stop()
		release()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, UIDs included
		}
		return nil, nil, d.errorf(op, "%w", err)
	}
	resp.Body = &idleBody{ReadCloser: resp.Body, timer: timer, timeout: d.opts.Timeout, ctx: ctx, stalled: stalled}
	done := func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		stop()
		release()
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusNoContent {
		msg := serverMessage(resp)
		done()
		return nil, nil, d.errorf(op, "HTTP %s%s", resp.Status, msg)
	}
	return resp, done, nil
}

// serverMessage reads what the server said about a failure: Orthanc's
// JSON "Message", else the first line of a text body, bounded.
func serverMessage(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var o struct {
		Message string `json:"Message"`
	}
	msg := ""
	if json.Unmarshal(b, &o) == nil && o.Message != "" {
		msg = o.Message
	} else if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		msg, _, _ = strings.Cut(string(b), "\n")
	}
	msg = strings.TrimSpace(strings.ToValidUTF8(msg, "?"))
	if utf8.RuneCountInString(msg) > 200 {
		msg = string([]rune(msg)[:200]) + "…"
	}
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// idleBody restarts the request's timer at every read, and says so when
// the timer ended the request.
type idleBody struct {
	io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
	ctx     context.Context
	stalled error
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	if err != nil && err != io.EOF && context.Cause(b.ctx) == b.stalled {
		err = b.stalled
	}
	return n, err
}
