package siteagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// ErrPermanent marks a failure that trying again cannot fix: Run returns an
// error wrapping it when the coordinator and this site cannot authenticate
// each other, and a task failing with it is reported at once instead of
// being retried. A Trainer may wrap it too (a model it cannot build).
var ErrPermanent = errors.New("permanent failure")

// permanentError is a failure wrapping ErrPermanent whose message is only
// the cause's, so a reason sent to the coordinator reads naturally.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() []error {
	return []error{ErrPermanent, e.err}
}

// permanent marks err as one that retrying cannot fix.
func permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return permanentError{err}
}

// permanentf is permanent(fmt.Errorf(...)).
func permanentf(format string, args ...any) error { return permanent(fmt.Errorf(format, args...)) }

// Limits on what the agent sends: the coordinator stores and shows these
// strings, so they are bounded here as well as there.
const (
	maxDetail  = 1 << 10 // TaskStatus.detail, Health.data_problem
	maxVersion = 64
)

// bounded returns s without control characters, cut to at most n bytes on a
// rune boundary (with an ellipsis when cut).
func bounded(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := n - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// scrubPaths replaces each occurrence of one of dirs, and the path that
// follows it, with the folder's base name: below a data folder are patient
// folders, whose names must not leave the site.
func scrubPaths(s string, dirs ...string) string {
	for _, d := range dirs {
		d = strings.TrimRight(d, `/\`)
		if len(d) < 2 {
			continue
		}
		var b strings.Builder
		for {
			i := strings.Index(s, d)
			if i < 0 {
				b.WriteString(s)
				break
			}
			b.WriteString(s[:i])
			b.WriteString("'" + baseName(d) + "'")
			rest := s[i+len(d):]
			// Skip the rest of the path: up to a quote, space or separator
			// that cannot be part of it as the error printed it.
			j := strings.IndexFunc(rest, func(r rune) bool {
				return r == '"' || r == '\'' || r == ' ' || r == ':' || r == ',' || r == ')' || r == ']'
			})
			if j < 0 {
				j = len(rest)
			}
			s = rest[j:]
		}
		s = b.String()
	}
	return s
}

func baseName(dir string) string {
	dir = strings.TrimRight(dir, `/\`)
	if i := strings.LastIndexAny(dir, `/\`); i >= 0 {
		return dir[i+1:]
	}
	return dir
}

// detail is the reason sent for a failed task: the error's message without
// the site's folders below their base names, bounded.
func (a *Agent) detail(err error) string {
	dirs := []string{a.cfg.StateDir}
	if d, ok := a.cfg.Data.(interface{ Folder() string }); ok {
		dirs = append(dirs, d.Folder())
	}
	return bounded(scrubPaths(err.Error(), dirs...), maxDetail)
}

// tlsWatch remembers the last TLS failure of the agent's connection that
// no reconnection can cure, until a session is welcomed. gRPC reports a
// failed handshake only as Unavailable with a message, so the transport
// credentials are wrapped to see the typed error where it happens. gRPC
// reconnects on its own schedule, not per session, so the record is not
// cleared when a session starts: a session's error may be the cached
// result of an earlier attempt.
type tlsWatch struct {
	mu  sync.Mutex
	err error
}

func (w *tlsWatch) note(err error) {
	if p := classifyTLS(err); p != nil {
		w.mu.Lock()
		w.err = p
		w.mu.Unlock()
	}
}

func (w *tlsWatch) reset() {
	w.mu.Lock()
	w.err = nil
	w.mu.Unlock()
}

func (w *tlsWatch) last() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// classifyTLS returns a permanent, user-facing error for a TLS failure
// that will recur on every attempt, and nil for anything else.
func classifyTLS(err error) error {
	if err == nil {
		return nil
	}
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return permanentf("the coordinator's certificate is not signed by this site's consortium CA (ca.pem in the kit): check `coordinator:` in agent.yaml or reinstall the site's kit")
	case errors.As(err, &host):
		return permanentf("the coordinator's certificate is not valid for the address dialled (%s): set `coordinator:` in agent.yaml to a host name the coordinator's certificate names", bounded(host.Host, 256))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return permanentf("the coordinator's certificate has expired or is not yet valid (check this machine's clock): ask the consortium admin to renew it")
	}
	switch remoteAlert(err) {
	case 48, 116: // unknown_ca; certificate_required: crypto/tls sends none that the server's CA list accepts
		return permanentf("the coordinator does not accept this site's certificate: it is not signed by the consortium's CA (a kit from another consortium?): reinstall the site's kit")
	case 45: // certificate_expired
		return permanentf("the coordinator refused this site's certificate as expired (or this machine's clock is wrong): ask the consortium admin for a new kit")
	case 44: // certificate_revoked
		return permanentf("the coordinator refused this site's certificate as revoked: ask the consortium admin for a new kit")
	case 42, 43: // bad_certificate, unsupported_certificate
		return permanentf("the coordinator refused this site's certificate: ask the consortium admin for a new kit")
	}
	return nil
}

// remoteAlert is the TLS alert the peer sent, or 0. crypto/tls reports
// one as a net.OpError "remote error" whose error has the text of the
// matching tls.AlertError.
func remoteAlert(err error) uint8 {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0
	}
	for _, a := range []uint8{42, 43, 44, 45, 48, 116} {
		if op.Err.Error() == tls.AlertError(a).Error() {
			return a
		}
	}
	return 0
}

// classifySession turns a failed session's error into a permanent one when
// reconnecting cannot help, and returns nil otherwise.
func (a *Agent) classifySession(err error) error {
	if p := a.tlsw.last(); p != nil {
		return p
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		msg := "the coordinator refused this site's identity"
		if s, ok := status.FromError(err); ok && s.Message() != "" {
			msg += " (" + bounded(s.Message(), 256) + ")"
		}
		return permanentf("%s: the certificate may be revoked or unknown to the consortium; ask the consortium admin for a new kit", msg)
	}
	return nil
}

// watchedCreds wraps the agent's transport credentials to record
// permanent TLS failures in a tlsWatch.
type watchedCreds struct {
	credentials.TransportCredentials
	w *tlsWatch
}

func (c watchedCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		c.w.note(err)
		return nil, nil, err
	}
	return watchedConn{Conn: conn, w: c.w}, info, nil
}

func (c watchedCreds) Clone() credentials.TransportCredentials {
	return watchedCreds{TransportCredentials: c.TransportCredentials.Clone(), w: c.w}
}

// watchedConn sees the alert by which a TLS 1.3 server rejects the
// client's certificate: it arrives after the client's handshake is done,
// on the first read.
type watchedConn struct {
	net.Conn
	w *tlsWatch
}

func (c watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.w.note(err)
	}
	return n, err
}

// Write looks for that alert when a write fails: the server that sent it
// closed the connection, so gRPC's first write may fail (and gRPC close
// the connection) before its reader has seen the alert.
func (c watchedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.w.last() == nil {
		c.Conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		var b [1]byte
		if _, rerr := c.Conn.Read(b[:]); rerr != nil {
			c.w.note(rerr)
		}
	}
	return n, err
}
