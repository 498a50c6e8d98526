package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/concord-fl/concord/imaging"
)

// DICOM JSON tags of the STOW-RS response (PS3.18 10.5.3).
const (
	tagFailedSOPSeq       = "00081198"
	tagReferencedSOPSeq   = "00081199"
	tagReferencedSOPClass = "00081150"
	tagReferencedSOPInst  = "00081155"
	tagFailureReason      = "00081197"
	tagErrorComment       = "00000902"
	// tagResultID is a private attribute of each stored instance: the
	// result its study produced, for the feedback API.
	tagPrivateCreator = "00090010" // reserves block 0x10: elements 0009,10xx
	tagResultID       = "00091011"
	privateCreator    = "CONCORD SERVING"
)

// stowLimits bounds one instance's parse: the parser's own limits with
// the request's size.
func (s *Server) stowLimits() imaging.Limits {
	l := imaging.DefaultLimits
	l.MaxFileBytes = s.cfg.MaxRequestBytes
	return l
}

// serveSTOW is STOW-RS (PS3.18 10.5): a multipart/related body of
// application/dicom parts. Every readable instance is run through the
// model and its study's result is queued for FHIR before the response is
// written; the response lists stored and failed instances.
func (s *Server) serveSTOW(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil || mt != "multipart/related":
		httpError(w, http.StatusUnsupportedMediaType, `STOW-RS takes Content-Type: multipart/related; type="application/dicom"; boundary=...`)
		return
	case params["type"] != "" && params["type"] != "application/dicom":
		httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("multipart type %q: only application/dicom instances are accepted (no metadata+bulkdata)", params["type"]))
		return
	case params["boundary"] == "":
		httpError(w, http.StatusBadRequest, "multipart/related without a boundary")
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-r.Context().Done():
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	mr := multipart.NewReader(body, params["boundary"])
	var insts []instance
	var failed []outcome
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request over %d bytes: send fewer instances per request", s.cfg.MaxRequestBytes))
			return
		}
		if err != nil {
			httpError(w, http.StatusBadRequest, "malformed multipart body: "+err.Error())
			return
		}
		if n >= s.cfg.MaxParts {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d instances in one request: send fewer per request", s.cfg.MaxParts))
			return
		}
		if ct := part.Header.Get("Content-Type"); ct != "" {
			if pt, _, _ := mime.ParseMediaType(ct); pt != "application/dicom" {
				failed = append(failed, outcome{reason: ReasonCannotParse, why: fmt.Sprintf("part %d is %q, not application/dicom", n+1, pt)})
				continue
			}
		}
		raw, err := io.ReadAll(part)
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request over %d bytes: send fewer instances per request", s.cfg.MaxRequestBytes))
			return
		}
		if err != nil {
			httpError(w, http.StatusBadRequest, "reading the request: "+err.Error())
			return
		}
		im, err := imaging.Read(raw, s.stowLimits())
		if err != nil {
			failed = append(failed, outcome{reason: ReasonCannotParse, why: fmt.Sprintf("part %d: %s", n+1, imaging.Reason(err))})
			continue
		}
		insts = append(insts, instance{raw: raw, image: im})
	}
	outs := append(s.process(r.Context(), arrived, insts), failed...)
	writeSTOWResponse(w, outs)
	stored := 0
	for _, o := range outs {
		if o.reason == 0 {
			stored++
		}
	}
	s.log.Info("stow-rs", "instances", len(outs), "stored", stored, "failed", len(outs)-stored)
}

// writeSTOWResponse writes the DICOM JSON response dataset: 200 when all
// were stored, 202 when some failed, 409 when none was stored.
func writeSTOWResponse(w http.ResponseWriter, outs []outcome) {
	var ok, bad []map[string]any
	for _, o := range outs {
		item := map[string]any{}
		if o.sopClass != "" {
			item[tagReferencedSOPClass] = attr("UI", o.sopClass)
		}
		if o.sopInstance != "" {
			item[tagReferencedSOPInst] = attr("UI", o.sopInstance)
		}
		if o.reason == 0 {
			item[tagPrivateCreator] = attr("LO", privateCreator)
			item[tagResultID] = attr("LO", o.resultID)
			ok = append(ok, item)
			continue
		}
		item[tagFailureReason] = attr("US", int(o.reason))
		item[tagErrorComment] = attr("LO", truncate(o.why, 64))
		bad = append(bad, item)
	}
	ds := map[string]any{}
	if len(ok) > 0 {
		ds[tagReferencedSOPSeq] = map[string]any{"vr": "SQ", "Value": ok}
	}
	if len(bad) > 0 {
		ds[tagFailedSOPSeq] = map[string]any{"vr": "SQ", "Value": bad}
	}
	status := http.StatusOK
	switch {
	case len(ok) == 0:
		status = http.StatusConflict
	case len(bad) > 0:
		status = http.StatusAccepted
	}
	w.Header().Set("Content-Type", "application/dicom+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ds)
}

func attr(vr string, v any) map[string]any { return map[string]any{"vr": vr, "Value": []any{v}} }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func httpError(w http.ResponseWriter, status int, msg string) {
	http.Error(w, msg, status)
}
