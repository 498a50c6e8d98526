package coordinator

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Health and readiness are served beside /metrics, on the plain-HTTP
// management listener (metrics_listen), for load balancers, systemd
// watchdogs and Kubernetes probes. They say why, never who: a reason names
// a component, not a site, job or file.
//
//	/healthz  200 while the process answers HTTP at all
//	/readyz   200 when the coordinator can do its work: the gRPC listener
//	          serves, the state database answers a read transaction, and
//	          the audit log verified at start-up; 503 with the reason
//	          otherwise

func (c *Coordinator) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (c *Coordinator) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := c.ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// ready returns why the coordinator cannot do its work, or nil.
func (c *Coordinator) ready() error {
	if !c.serving.Load() {
		return errors.New("the gRPC listener is not serving (starting or stopping)")
	}
	// A dial, not only the flag: a listener closed underneath (fd limits,
	// the socket removed) shows here before sites notice.
	conn, err := net.DialTimeout("tcp", loopbackOf(c.lis.Addr()), time.Second)
	if err != nil {
		return fmt.Errorf("the gRPC listener does not accept connections: %w", err)
	}
	conn.Close()
	if err := c.st.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bMeta) == nil {
			return errors.New("its meta bucket is missing")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("the state database does not answer a read: %w", err)
	}
	if c.auditBroken != nil {
		return errors.New("the audit log failed verification at start-up (running with --accept-broken-audit-log)")
	}
	return nil
}

// loopbackOf turns a wildcard listen address (":7443", "[::]:7443") into
// one that can be dialled from this host.
func loopbackOf(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
