package serving

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/serving/fhirr4"
)

// DICOM tags read for the result (never logged).
var (
	tagPatientID       = imaging.NewTag(0x0010, 0x0020)
	tagAccessionNumber = imaging.NewTag(0x0008, 0x0050)
)

// Failure reasons of the STOW-RS response (PS3.18 table 10.5.3-1, PS3.4
// annex GG): what went wrong with one instance.
const (
	ReasonProcessing   uint16 = 0x0110 // processing failure: the pipeline or the model could not run on it
	ReasonCannotParse  uint16 = 0xC000 // cannot understand: not a readable DICOM instance
	ReasonSOPNotStored uint16 = 0xC001 // the study it belongs to could not be recorded
)

// instance is one arrived DICOM object.
type instance struct {
	raw   []byte
	image *imaging.Image
}

// outcome is what became of one instance.
type outcome struct {
	sopClass, sopInstance string
	resultID              string // set when stored
	reason                uint16 // set when failed
	why                   string // a safe category, no identifiers
}

// studyResult is one study's inference, before it is recorded.
type studyResult struct {
	result fhirr4.Result
	files  [][]byte
	idx    []int  // the instances it covers, into the caller's slice
	seg    []byte // the DICOM SEG of a segmentation result
}

// process runs the model on the instances (grouped by study, one result
// per study) and records every result durably before returning: audit
// record, feedback record and delivery queue item in one transaction.
func (s *Server) process(ctx context.Context, arrived time.Time, insts []instance) []outcome {
	out := make([]outcome, len(insts))
	studies := map[string][]int{}
	var order []string
	for i, in := range insts {
		out[i].sopClass, out[i].sopInstance = in.image.SOPClassUID, in.image.SOPInstanceUID
		uid := in.image.StudyInstanceUID
		if uid == "" {
			out[i].reason, out[i].why = ReasonCannotParse, "no Study Instance UID"
			continue
		}
		if _, ok := studies[uid]; !ok {
			order = append(order, uid)
		}
		studies[uid] = append(studies[uid], i)
	}
	for _, uid := range order {
		if err := ctx.Err(); err != nil {
			for _, i := range studies[uid] {
				out[i].reason, out[i].why = ReasonSOPNotStored, "the server is stopping"
			}
			continue
		}
		sr, err := s.infer(insts, studies[uid], out)
		if err == nil {
			err = s.record(sr, arrived)
		}
		reason := ReasonSOPNotStored // not recorded: may be sent again
		var u *unservable
		if errors.As(err, &u) {
			reason = ReasonProcessing // sending it again gives the same
		}
		for _, i := range studies[uid] {
			if out[i].reason != 0 {
				continue
			}
			if err != nil {
				out[i].reason, out[i].why = reason, err.Error()
				continue
			}
			out[i].resultID = sr.result.ID
		}
		if err != nil {
			s.log.Error("a study could not be served", "err", err)
		}
	}
	return out
}

// infer runs the job's pipeline and model on one study's instances. An
// instance the pipeline cannot take is marked failed in out; the study's
// probabilities are the mean over the instances that ran.
func (s *Server) infer(insts []instance, idx []int, out []outcome) (studyResult, error) {
	if s.model.Segments() {
		return s.inferSegmentation(insts, idx, out)
	}
	m := s.model
	pl := m.Pipeline
	per := pl.Channels * pl.Height * pl.Width
	ds := learning.Dataset{C: pl.Channels, H: pl.Height, W: pl.Width}
	sr := studyResult{}
	first := insts[idx[0]].image
	for _, i := range idx {
		px, err := pl.Apply(insts[i].image, 0)
		if err != nil || len(px) != per {
			out[i].reason, out[i].why = ReasonProcessing, "pipeline: "+imaging.Reason(err)
			continue
		}
		ds.X = append(ds.X, px...)
		ds.N++
		sr.idx = append(sr.idx, i)
		sr.files = append(sr.files, insts[i].raw)
	}
	if ds.N == 0 {
		return sr, &unservable{errors.New("no instance of the study could be prepared for the model")}
	}
	probs, err := m.Net.Predict(ds)
	if err != nil {
		return sr, &unservable{fmt.Errorf("run the model: %w", err)}
	}
	k := len(s.classes)
	mean := make([]float64, k)
	for n := range ds.N {
		for c := range k {
			mean[c] += min(max(float64(probs[n*k+c]), 0), 1) / float64(ds.N)
		}
	}
	decided, th, pos := 0, 0.0, 0
	if k == 2 {
		th, pos = m.Threshold, 1
		if mean[1] >= th {
			decided = 1
		}
	} else {
		for c := range k {
			if mean[c] > mean[decided] {
				decided = c
			}
		}
		pos = decided
	}
	r := s.newResult(first)
	r.Task, r.Classes, r.Probabilities = fhirr4.TaskClassification, append([]string(nil), s.classes...), mean
	r.PositiveClass, r.Threshold, r.Decision = pos, th, s.classes[decided]
	sr.result = r
	return sr, nil
}

// newResult is the part of a study's result that does not depend on the
// task: ids, the study, the patient and the model, from the study's first
// image.
func (s *Server) newResult(first *imaging.Image) fhirr4.Result {
	m := s.model
	mf := m.Manifest
	return fhirr4.Result{
		ID:               ResultID(mf.DeviceUID, first.StudyInstanceUID),
		StudyInstanceUID: first.StudyInstanceUID, SeriesInstanceUID: first.SeriesInstanceUID,
		AccessionNumber: first.File.Data.String(tagAccessionNumber),
		PatientID:       first.File.Data.String(tagPatientID), PatientIDSystem: s.cfg.PatientIDSystem,
		Issued: time.Now().UTC(),
		Model: fhirr4.Model{Name: mf.Name, Version: mf.Version, DeviceUID: mf.DeviceUID, ManifestSHA256: m.ManifestSHA256,
			JobID: mf.JobID, Publisher: s.cfg.Publisher},
	}
}

// unservable is a study that fails the same way however often it is sent.
type unservable struct{ err error }

func (u *unservable) Error() string { return u.err.Error() }
func (u *unservable) Unwrap() error { return u.err }

// ResultID names the result of one study by one model version: the same
// study sent twice gets the same id, so its FHIR resources are created
// once (the bundle's creates are conditional on it).
func ResultID(deviceUID, studyUID string) string {
	s := sha256.Sum256([]byte("concord serving result v1\n" + deviceUID + "\n" + studyUID))
	return hex.EncodeToString(s[:16])
}

// StudyHash is how the audit log names a study: SHA-256 of its UID.
func StudyHash(studyUID string) string {
	s := sha256.Sum256([]byte(studyUID))
	return hex.EncodeToString(s[:])
}

// record keeps the study's instances for feedback and commits the result.
func (s *Server) record(sr studyResult, arrived time.Time) error {
	r := sr.result
	bundle, err := fhirr4.Bundle(r)
	if err != nil {
		return &unservable{fmt.Errorf("the result cannot be written as FHIR: %w", err)}
	}
	dir := filepath.Join(s.studiesDir, r.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keep the study for feedback: %w", err)
	}
	var files []string
	for n, b := range sr.files {
		name := filepath.Join(dir, fmt.Sprintf("%s-%d.dcm", instanceName(b), n))
		if err := writeSynced(name, b); err != nil {
			return fmt.Errorf("keep the study for feedback: %w", err)
		}
		files = append(files, name)
	}
	segPath := ""
	if sr.seg != nil {
		if err := os.MkdirAll(s.segDir, 0o700); err != nil {
			return fmt.Errorf("keep the DICOM SEG: %w", err)
		}
		segPath = filepath.Join(s.segDir, r.ID+".dcm")
		if err := writeSynced(segPath, sr.seg); err != nil {
			return fmt.Errorf("keep the DICOM SEG: %w", err)
		}
	}
	decided := 0
	for c, name := range r.Classes {
		if name == r.Decision {
			decided = c
		}
	}
	rec := resultRecord{ID: r.ID, Version: r.Model.Version, Classes: r.Classes, Decided: decided, Files: files, Seg: segPath, Created: r.Issued}
	ar := AuditRecord{Time: r.Issued, Event: "inference", Version: r.Model.Version, DeviceUID: r.Model.DeviceUID,
		StudyUIDHash: StudyHash(r.StudyInstanceUID), ResultID: r.ID, Instances: len(files)}
	it := Item{ResultID: r.ID, Bundle: bundle, Arrived: arrived, Enqueued: time.Now().UTC()}
	var segs []SEGItem
	if segPath != "" && s.cfg.SEGStore != "" {
		segs = append(segs, SEGItem{ResultID: r.ID, Path: segPath, SOPInstanceUID: r.SegInstanceUID})
	}
	if err := s.store.commitResult(rec, ar, it, segs...); err != nil {
		return fmt.Errorf("record the result: %w", err)
	}
	s.wakeDeliverer()
	if len(segs) > 0 {
		s.wakeSEG()
	}
	return nil
}

func instanceName(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// writeSynced writes a file and syncs it, so that a result committed after
// it never refers to a file lost in a crash.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
