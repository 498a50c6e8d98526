package siteagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

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
		return permanentf("the coordinator's certificate is not signed by this site's consortium CA (ca.pem in the kit): check `coordinator:` in agent.yaml, " +
			"reinstall the site's kit, or have the hospital's proxy pass this connection through without TLS inspection")
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
