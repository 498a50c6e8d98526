package coordinator

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// eventCounts is a subscriber of the event stream: it counts events by kind
// and serves them, with the current sites and jobs, in the Prometheus text
// format on an optional plain-HTTP listener (bind it to a management
// network or loopback: it carries counts only, no identifiers).
type eventCounts struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func (m *eventCounts) consume(ctx context.Context, events <-chan Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			m.mu.Lock()
			m.counts[e.Kind]++
			m.mu.Unlock()
		}
	}
}

func (c *Coordinator) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	c.metrics.mu.Lock()
	kinds := make([]string, 0, len(c.metrics.counts))
	for k := range c.metrics.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintln(w, "# HELP concord_events_total Events on the coordinator's event stream since it started, by kind.")
	fmt.Fprintln(w, "# TYPE concord_events_total counter")
	for _, k := range kinds {
		fmt.Fprintf(w, "concord_events_total{kind=%q} %d\n", k, c.metrics.counts[k])
	}
	c.metrics.mu.Unlock()
	c.mu.Lock()
	connected := len(c.sessions)
	states := map[string]int{}
	for _, j := range c.jobs {
		states[string(j.m.State().Phase)]++
	}
	c.mu.Unlock()
	fmt.Fprintln(w, "# HELP concord_sites_connected Site agents with an open task stream.")
	fmt.Fprintln(w, "# TYPE concord_sites_connected gauge")
	fmt.Fprintf(w, "concord_sites_connected %d\n", connected)
	fmt.Fprintln(w, "# HELP concord_jobs Jobs by phase.")
	fmt.Fprintln(w, "# TYPE concord_jobs gauge")
	phases := make([]string, 0, len(states))
	for p := range states {
		phases = append(phases, p)
	}
	sort.Strings(phases)
	for _, p := range phases {
		fmt.Fprintf(w, "concord_jobs{phase=%q} %d\n", p, states[p])
	}
	c.writeReady(w)
}

// startMetrics subscribes the metrics to the event stream and, when an
// address is configured, serves them until ctx ends.
func (c *Coordinator) startMetrics(ctx context.Context) error {
	events, cancel := c.bus.subscribe()
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer cancel()
		c.metrics.consume(ctx, events)
	}()
	if c.metricsLis == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", c.serveMetrics)
	mux.HandleFunc("/healthz", c.serveHealthz)
	mux.HandleFunc("/readyz", c.serveReadyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	c.bg.Add(2)
	go func() {
		defer c.bg.Done()
		_ = srv.Serve(c.metricsLis)
	}()
	go func() {
		defer c.bg.Done()
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}()
	return nil
}

// MetricsAddr is the metrics listener's address, or nil without one.
func (c *Coordinator) MetricsAddr() net.Addr {
	if c.metricsLis == nil {
		return nil
	}
	return c.metricsLis.Addr()
}
