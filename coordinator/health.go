package coordinator

import (
	"errors"
	"fmt"
	"io"
	"net/http"

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
	// Set just before Serve and cleared as soon as it returns or the
	// coordinator begins to stop.
	if !c.serving.Load() {
		return errors.New("the gRPC listener is not serving (starting or stopping)")
	}
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

// writeReady exposes readiness as a metric, so that an alert rule can
// follow it without a probe exporter.
func (c *Coordinator) writeReady(w io.Writer) {
	v := 0
	if c.ready() == nil {
		v = 1
	}
	fmt.Fprintln(w, "# HELP concord_coordinator_ready 1 when /readyz answers 200.")
	fmt.Fprintln(w, "# TYPE concord_coordinator_ready gauge")
	fmt.Fprintf(w, "concord_coordinator_ready %d\n", v)
}
