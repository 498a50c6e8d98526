package siteagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The management listener (agent.yaml metrics_listen) serves hospital IT's
// monitoring on plain HTTP: /healthz, /readyz, /metrics in the Prometheus
// text format, and POST /backup (backup.go). Bind it to loopback or the
// management network: it carries counts only, never a patient, a file, a
// job's name or a site's. The exposition is written by hand, as the
// coordinator's is, so the agent needs no metrics library.

// opsState is what the agent counts in memory for its metrics; the rest
// (bytes sent, epsilon, drift, alarms) is read from its state database at
// each scrape, so it survives restarts.
type opsState struct {
	mu        sync.Mutex
	tasks     map[taskOutcome]uint64
	rounds    uint64
	connected bool
	contact   time.Time // last heartbeat sent or message received
}

type taskOutcome struct{ kind, outcome string }

// taskKindLabel bounds the label to the known kinds.
func taskKindLabel(k pb.TaskKind) string {
	if _, ok := pb.TaskKind_name[int32(k)]; !ok || k == pb.TaskKind_TASK_KIND_UNSPECIFIED {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "TASK_KIND_"))
}

// taskEnded counts a task that finished (err nil) or failed for good; a
// task stopped by its job's cancellation or a lost link is not counted.
func (o *opsState) taskEnded(k pb.TaskKind, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tasks == nil {
		o.tasks = map[taskOutcome]uint64{}
	}
	outcome := "done"
	if err != nil {
		outcome = "failed"
	}
	o.tasks[taskOutcome{taskKindLabel(k), outcome}]++
	if err == nil && k == pb.TaskKind_TASK_KIND_TRAIN {
		o.rounds++
	}
}

func (o *opsState) setConnected(c bool) {
	o.mu.Lock()
	o.connected = c
	if c {
		o.contact = time.Now()
	}
	o.mu.Unlock()
}

func (o *opsState) touch() {
	o.mu.Lock()
	o.contact = time.Now()
	o.mu.Unlock()
}

// MetricsAddr is the management listener's address, or nil without one.
func (a *Agent) MetricsAddr() net.Addr {
	if a.metricsLis == nil {
		return nil
	}
	return a.metricsLis.Addr()
}

// serveManagement serves the management listener until ctx ends.
func (a *Agent) serveManagement(ctx context.Context) {
	if a.metricsLis == nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", a.serveMetrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", a.serveReadyz)
	mux.HandleFunc("/backup", a.serveBackup)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(a.metricsLis)
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-done
}

// ready returns why the agent cannot take part in jobs, or nil.
func (a *Agent) ready() error {
	if err := a.st.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bSubmissions) == nil {
			return errors.New("its submissions bucket is missing")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("the state database does not answer a read: %w", err)
	}
	a.mu.Lock()
	h, known := a.health, a.healthKnown
	a.mu.Unlock()
	switch {
	case !known:
		return errors.New("the data has not been checked yet")
	case h.problem != "":
		return fmt.Errorf("the site's data cannot be trained on: %s", h.problem)
	}
	if err := a.tlsw.last(); err != nil {
		return fmt.Errorf("the TLS setup fails and retrying cannot help: %w", err)
	}
	return nil
}

func (a *Agent) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := a.ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// stored is what a scrape reads from the state database.
type stored struct {
	uploaded, reports, alarms int64
	spent, budget             map[string]float64 // by level
	maxPSI                    float64
	hasDrift                  bool
}

func (a *Agent) readStored() (stored, error) {
	s := stored{spent: map[string]float64{}, budget: map[string]float64{}}
	err := a.st.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bSent); b != nil {
			if err := b.ForEach(func(_, v []byte) error {
				var e SentEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return err
				}
				if e.Kind == sentKindValidation {
					s.reports++
				} else {
					s.uploaded += e.Bytes
				}
				return nil
			}); err != nil {
				return fmt.Errorf("sent log: %w", err)
			}
		}
		if b := tx.Bucket(bPrivacy); b != nil {
			for level, key := range map[string][]byte{"record": keyLedger, "site": keySiteLedger} {
				v := b.Get(key)
				if v == nil {
					continue
				}
				var l dp.Ledger
				if err := l.UnmarshalJSON(v); err != nil {
					return err
				}
				spent, err := l.Spent()
				if err != nil {
					return err
				}
				s.spent[level], s.budget[level] = spent, l.Budget().Epsilon
			}
		}
		alarms, err := readAlarms(tx)
		if err != nil {
			return err
		}
		s.alarms = int64(len(alarms))
		_, r, err := readDrift(tx)
		if err != nil {
			return err
		}
		if r != nil {
			s.maxPSI, s.hasDrift = r.MaxPsi, true
		}
		return nil
	})
	return s, err
}

func (a *Agent) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	st, err := a.readStored()
	if err != nil {
		a.log.Error("metrics: read the state database", "err", err)
		http.Error(w, "the state database cannot be read", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	a.mu.Lock()
	h, pending := a.health, len(a.outbox)
	a.mu.Unlock()
	a.ops.mu.Lock()
	tasks := make([]taskOutcome, 0, len(a.ops.tasks))
	counts := map[taskOutcome]uint64{}
	for k, n := range a.ops.tasks {
		tasks, counts[k] = append(tasks, k), n
	}
	rounds, connected, contact := a.ops.rounds, a.ops.connected, a.ops.contact
	a.ops.mu.Unlock()
	sort.Slice(tasks, func(i, j int) bool {
		return tasks[i].kind < tasks[j].kind || tasks[i].kind == tasks[j].kind && tasks[i].outcome < tasks[j].outcome
	})
	metric(w, "concord_agent_tasks_total", "counter", "Tasks ended since the agent started, by kind and outcome (done, failed).")
	for _, k := range tasks {
		fmt.Fprintf(w, "concord_agent_tasks_total{kind=%q,outcome=%q} %d\n", k.kind, k.outcome, counts[k])
	}
	sample(w, "concord_agent_rounds_trained_total", "counter", "Training rounds this agent completed since it started.", float64(rounds))
	sample(w, "concord_agent_validation_reports_sent_total", "counter", "Validation reports the task stream took (the site's sent log).", float64(st.reports))
	sample(w, "concord_agent_uploaded_bytes_total", "counter", "Bytes of uploads the coordinator confirmed (the site's sent log).", float64(st.uploaded))
	sample(w, "concord_agent_connected", "gauge", "1 while the agent has a task stream to the coordinator.", b2f(connected))
	// Declared always, sampled once known: a scraper sees the metric exists.
	metric(w, "concord_agent_last_heartbeat_age_seconds", "gauge", "Seconds since the last heartbeat sent to or message received from the coordinator.")
	if !contact.IsZero() {
		fmt.Fprintf(w, "concord_agent_last_heartbeat_age_seconds %g\n", time.Since(contact).Seconds())
	}
	metric(w, "concord_agent_epsilon_spent", "gauge", "Differential privacy epsilon spent, by ledger level (record, site).")
	for _, l := range sortedKeys(st.spent) {
		fmt.Fprintf(w, "concord_agent_epsilon_spent{level=%q} %g\n", l, st.spent[l])
	}
	metric(w, "concord_agent_epsilon_budget", "gauge", "The site's epsilon budget, by ledger level (record, site).")
	for _, l := range sortedKeys(st.budget) {
		fmt.Fprintf(w, "concord_agent_epsilon_budget{level=%q} %g\n", l, st.budget[l])
	}
	sample(w, "concord_agent_data_examples", "gauge", "Training examples the last data check counted.", float64(h.examples))
	sample(w, "concord_agent_data_problem", "gauge", "1 when the last data check found the data cannot be trained on.", b2f(h.problem != ""))
	metric(w, "concord_agent_drift_max_psi", "gauge", "The largest population stability index of the last drift report.")
	if st.hasDrift {
		fmt.Fprintf(w, "concord_agent_drift_max_psi %g\n", st.maxPSI)
	}
	sample(w, "concord_agent_witness_alarms", "gauge", "Audit checkpoints this site refused to cosign (witness alarms kept).", float64(st.alarms))
	sample(w, "concord_agent_pending_reports", "gauge", "Validation reports waiting for the task stream.", float64(pending))
	sample(w, "concord_agent_ready", "gauge", "1 when /readyz answers 200.", b2f(a.ready() == nil))
}

func metric(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func sample(w io.Writer, name, typ, help string, v float64) {
	metric(w, name, typ, help)
	fmt.Fprintf(w, "%s %g\n", name, v)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
