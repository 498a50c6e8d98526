package serving

import (
	"fmt"
	"net/http"
)

// serveMetrics is the serving process's Prometheus text: it runs apart
// from `site-agent run`, so it answers on its own listener. Counts only.
func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	c, err := s.store.Counts()
	if err != nil {
		s.log.Error("metrics: read the serving database", "err", err)
		http.Error(w, "cannot read the serving database", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, m := range []struct {
		name, typ, help string
		v               float64
	}{
		{"concord_serve_queue_depth", "gauge", "Results waiting for delivery to the FHIR endpoint.", float64(c.Queued)},
		{"concord_serve_results_total", "counter", "Study results recorded (one per study).", float64(c.Served)},
		{"concord_serve_delivered_total", "counter", "Results the FHIR endpoint confirmed.", float64(c.Delivered)},
		{"concord_serve_parked_total", "counter", "Results the FHIR endpoint refused for good (parked, not retried).", float64(c.Parked)},
		{"concord_serve_feedback_total", "counter", "Clinician feedback stored as labelled examples.", float64(c.Feedback)},
		{"concord_serve_seg_queue_depth", "gauge", "DICOM SEGs waiting to be stored in the PACS.", float64(c.SEGQueued)},
		{"concord_serve_seg_stored_total", "counter", "DICOM SEGs the PACS confirmed.", float64(c.SEGStored)},
		{"concord_serve_seg_parked_total", "counter", "DICOM SEGs the PACS refused for good (kept in the state folder).", float64(c.SEGParked)},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", m.name, m.help, m.name, m.typ, m.name, m.v)
	}
}
