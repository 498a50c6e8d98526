package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Verdicts a clinician can give on a result.
const (
	VerdictAgree     = "agree"
	VerdictDisagree  = "disagree"
	VerdictCorrected = "corrected"
)

// FeedbackRequest is the body of POST /feedback.
type FeedbackRequest struct {
	ResultID string `json:"result_id"`
	Verdict  string `json:"verdict"`
	// Label is the correct class, required with "corrected".
	Label string `json:"label,omitempty"`
}

// FeedbackResponse says where the example went (its class; no path).
type FeedbackResponse struct {
	ResultID string `json:"result_id"`
	Label    string `json:"label"`
	Files    int    `json:"files"`
}

const maxFeedbackBytes = 4 << 10

// serveFeedback stores the study of a result as a labelled example in the
// feedback folder (dir/<class>/<result>-N.dcm), which the next job trains
// on and the drift report counts. "agree" labels it with the decision;
// "disagree" with the other class of a binary model; "corrected" with the
// label given.
func (s *Server) serveFeedback(w http.ResponseWriter, r *http.Request) {
	var req FeedbackRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxFeedbackBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "feedback: a JSON body {\"result_id\", \"verdict\": agree|disagree|corrected, \"label\"}: "+err.Error())
		return
	}
	resp, status, err := s.feedback(req)
	if err != nil {
		httpError(w, status, "feedback: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (s *Server) feedback(req FeedbackRequest) (FeedbackResponse, int, error) {
	if s.cfg.FeedbackDir == "" {
		return FeedbackResponse{}, http.StatusNotImplemented, errors.New("this site has no feedback.dir in agent.yaml: corrections cannot be kept")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok, err := s.store.result(req.ResultID)
	if err != nil {
		return FeedbackResponse{}, http.StatusInternalServerError, err
	}
	if !ok {
		return FeedbackResponse{}, http.StatusNotFound, fmt.Errorf("no result %q at this site", truncate(req.ResultID, 64))
	}
	if rec.Feedback != "" {
		return FeedbackResponse{}, http.StatusConflict, fmt.Errorf("result %s already has feedback (%s)", rec.ID, rec.Feedback)
	}
	if rec.Seg != "" {
		return s.segFeedback(req, rec)
	}
	label := ""
	switch req.Verdict {
	case VerdictAgree:
		label = rec.Classes[rec.Decided]
	case VerdictDisagree:
		if len(rec.Classes) != 2 {
			return FeedbackResponse{}, http.StatusBadRequest, fmt.Errorf("the model has %d classes: say which is right with verdict corrected and a label", len(rec.Classes))
		}
		label = rec.Classes[1-rec.Decided]
	case VerdictCorrected:
		if !slices.Contains(rec.Classes, req.Label) {
			return FeedbackResponse{}, http.StatusBadRequest, fmt.Errorf("label %q is not one of the model's classes %v", truncate(req.Label, 64), rec.Classes)
		}
		label = req.Label
	default:
		return FeedbackResponse{}, http.StatusBadRequest, fmt.Errorf("verdict %q: give agree, disagree or corrected", truncate(req.Verdict, 32))
	}
	if status, err := copyExample(filepath.Join(s.cfg.FeedbackDir, label), rec, rec.Files); err != nil {
		return FeedbackResponse{}, status, err
	}
	return s.feedbackDone(req, rec, label, len(rec.Files))
}

// copyExample copies a result's kept files into dir as <result>-N.dcm.
func copyExample(dir string, rec resultRecord, files []string) (int, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return http.StatusInternalServerError, fmt.Errorf("the feedback folder: %w", err)
	}
	for n, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return http.StatusGone, fmt.Errorf("the study of result %s is no longer kept at this site", rec.ID)
		}
		if err := writeSynced(filepath.Join(dir, fmt.Sprintf("%s-%d.dcm", rec.ID, n)), b); err != nil {
			return http.StatusInternalServerError, fmt.Errorf("write to the feedback folder: %w", err)
		}
	}
	return 0, nil
}

// segFeedback takes a verdict on a segmentation result. "agree" makes the
// study and its SEG a training example: they go to the feedback folder's
// segmentation/ sub-folder side by side, the layout SegFolder reads (a SEG
// beside the images it references). "disagree" is recorded and counted
// but gives no example (the right mask is not known), and a corrected
// mask is not taken through this API.
func (s *Server) segFeedback(req FeedbackRequest, rec resultRecord) (FeedbackResponse, int, error) {
	files := 0
	switch req.Verdict {
	case VerdictAgree:
		all := append(append([]string(nil), rec.Files...), rec.Seg)
		if status, err := copyExample(filepath.Join(s.cfg.FeedbackDir, SegFeedbackDir), rec, all); err != nil {
			return FeedbackResponse{}, status, err
		}
		files = len(all)
	case VerdictDisagree:
	case VerdictCorrected:
		return FeedbackResponse{}, http.StatusBadRequest, errors.New("a segmentation result takes agree or disagree: a corrected mask is not taken through this API (disagree, and correct the SEG in the PACS)")
	default:
		return FeedbackResponse{}, http.StatusBadRequest, fmt.Errorf("verdict %q: give agree or disagree", truncate(req.Verdict, 32))
	}
	return s.feedbackDone(req, rec, "", files)
}

// SegFeedbackDir is the sub-folder of the feedback folder that agreed
// segmentation results go to.
const SegFeedbackDir = "segmentation"

// feedbackDone records the verdict on the result and in the audit log.
func (s *Server) feedbackDone(req FeedbackRequest, rec resultRecord, label string, files int) (FeedbackResponse, int, error) {
	rec.Feedback = req.Verdict
	if err := s.store.putResult(rec); err != nil {
		return FeedbackResponse{}, http.StatusInternalServerError, err
	}
	if err := s.store.feedbackAudit(AuditRecord{Time: time.Now().UTC(), Event: "feedback", Version: rec.Version,
		DeviceUID: s.model.Manifest.DeviceUID, ResultID: rec.ID, Verdict: req.Verdict}); err != nil {
		return FeedbackResponse{}, http.StatusInternalServerError, err
	}
	s.log.Info("feedback stored", "result", rec.ID, "verdict", req.Verdict, "label", label, "files", files)
	return FeedbackResponse{ResultID: rec.ID, Label: label, Files: files}, http.StatusOK, nil
}
