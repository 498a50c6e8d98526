package fhirr4

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Model identifies the model version that produced a result.
type Model struct{ Name, Version, DeviceUID, ManifestSHA256, JobID, Publisher string }

// Result is one study's AI result.
type Result struct {
	// ID is stable across retries; the identifiers of all resources derive
	// from it, so delivering the same Result twice creates nothing new.
	ID string
	// StudyInstanceUID is required; SeriesInstanceUID and AccessionNumber are optional.
	StudyInstanceUID, SeriesInstanceUID, AccessionNumber string
	// PatientID and PatientIDSystem are the hospital's own identifier of the
	// patient; they go to the hospital's FHIR server and nowhere else.
	PatientID, PatientIDSystem string
	Issued                     time.Time
	Model                      Model
	Task                       string // TaskClassification or TaskSegmentation
	Classes                    []string
	Probabilities              []float64 // per class (classification; optional for segmentation)
	PositiveClass              int
	Threshold                  float64 // the version's validated decision threshold
	Decision                   string  // the class decided
	SegInstanceUID             string  // segmentation: SOP Instance UID of the DICOM SEG produced
	// SegmentVolumesML is each segment's volume where the images give a
	// slice thickness; SegmentAreasMM2 its area (summed over the images)
	// where they give only a pixel spacing. A segment is in at most one.
	SegmentVolumesML map[string]float64
	SegmentAreasMM2  map[string]float64
}

// The tasks a Result can come from.
const (
	TaskClassification = "classification"
	TaskSegmentation   = "segmentation"
)

// Bounds on what a Result may carry. A Result comes from our own serving
// code, but the strings end up in another organisation's system, so they are
// bounded and checked rather than trusted.
const (
	maxIDLen    = 128
	maxTextLen  = 256
	maxClasses  = 64
	maxSegments = 64
)

// ErrInvalidResult is wrapped by every error Bundle returns for a Result that
// cannot become a valid FHIR resource.
var ErrInvalidResult = errors.New("invalid result")

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	uidPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$`)
	shaPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidResult, fmt.Sprintf(format, args...))
}

// validate checks r field by field. Its messages name the field and the
// reason, never a patient identifier's value.
func (r *Result) validate() error {
	if r.ID == "" || len(r.ID) > maxIDLen || !idPattern.MatchString(r.ID) {
		return invalid("ID must be 1 to %d characters of letters, digits, '.', '_' or '-'", maxIDLen)
	}
	if err := checkUID("StudyInstanceUID", r.StudyInstanceUID, true); err != nil {
		return err
	}
	if err := checkUID("SeriesInstanceUID", r.SeriesInstanceUID, false); err != nil {
		return err
	}
	if err := checkText("AccessionNumber", r.AccessionNumber, false); err != nil {
		return err
	}
	if err := checkText("PatientID", r.PatientID, true); err != nil {
		return err
	}
	if err := checkText("PatientIDSystem", r.PatientIDSystem, true); err != nil {
		return err
	}
	if u, err := url.Parse(r.PatientIDSystem); err != nil || u.Scheme == "" || strings.ContainsAny(r.PatientIDSystem, " |") {
		return invalid("PatientIDSystem must be an absolute URI such as urn:oid:1.2.3 (the hospital's identifier namespace)")
	}
	if r.Issued.IsZero() {
		return invalid("Issued is not set")
	}
	if err := r.Model.validate(); err != nil {
		return err
	}
	if len(r.Classes) > maxClasses {
		return invalid("%d classes, at most %d", len(r.Classes), maxClasses)
	}
	seen := map[string]bool{}
	for i, c := range r.Classes {
		if err := checkText(fmt.Sprintf("Classes[%d]", i), c, true); err != nil {
			return err
		}
		if seen[c] {
			return invalid("class %q listed twice", c)
		}
		seen[c] = true
	}
	if err := checkProbability("Threshold", r.Threshold); err != nil {
		return err
	}
	if err := checkText("Decision", r.Decision, true); err != nil {
		return err
	}
	switch r.Task {
	case TaskClassification:
		return r.validateClassification(seen)
	case TaskSegmentation:
		return r.validateSegmentation()
	default:
		return invalid("Task %q: want %q or %q", r.Task, TaskClassification, TaskSegmentation)
	}
}

func (r *Result) validateClassification(classes map[string]bool) error {
	if len(r.Classes) < 2 {
		return invalid("classification needs at least 2 classes, got %d", len(r.Classes))
	}
	if err := r.checkProbabilities(); err != nil {
		return err
	}
	if r.PositiveClass < 0 || r.PositiveClass >= len(r.Classes) {
		return invalid("PositiveClass %d is not an index into %d classes", r.PositiveClass, len(r.Classes))
	}
	if !classes[r.Decision] {
		return invalid("Decision %q is not one of the classes", r.Decision)
	}
	if r.SegInstanceUID != "" || len(r.SegmentVolumesML) > 0 || len(r.SegmentAreasMM2) > 0 {
		return invalid("a classification result carries no segmentation")
	}
	return nil
}

func (r *Result) validateSegmentation() error {
	if err := checkUID("SegInstanceUID", r.SegInstanceUID, true); err != nil {
		return err
	}
	if len(r.Probabilities) > 0 || len(r.Classes) > 0 {
		if err := r.checkProbabilities(); err != nil {
			return err
		}
	}
	if n := len(r.SegmentVolumesML) + len(r.SegmentAreasMM2); n > maxSegments {
		return invalid("%d segment sizes, at most %d", n, maxSegments)
	}
	for _, m := range []struct {
		field, what string
		sizes       map[string]float64
	}{{"SegmentVolumesML", "volume", r.SegmentVolumesML}, {"SegmentAreasMM2", "area", r.SegmentAreasMM2}} {
		for name, v := range m.sizes {
			if err := checkText(m.field+" key", name, true); err != nil {
				return err
			}
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return invalid("%s of segment %q is %v, want a finite value >= 0", m.what, name, v)
			}
		}
	}
	for name := range r.SegmentAreasMM2 {
		if _, ok := r.SegmentVolumesML[name]; ok {
			return invalid("segment %q has both a volume and an area", name)
		}
	}
	return nil
}

func (r *Result) checkProbabilities() error {
	if len(r.Probabilities) != len(r.Classes) {
		return invalid("%d probabilities for %d classes", len(r.Probabilities), len(r.Classes))
	}
	for i, p := range r.Probabilities {
		if err := checkProbability(fmt.Sprintf("Probabilities[%d]", i), p); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) validate() error {
	for _, f := range []struct{ name, v string }{
		{"Model.Name", m.Name}, {"Model.Version", m.Version}, {"Model.DeviceUID", m.DeviceUID},
	} {
		if err := checkText(f.name, f.v, true); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{
		{"Model.ManifestSHA256", m.ManifestSHA256}, {"Model.JobID", m.JobID}, {"Model.Publisher", m.Publisher},
	} {
		if err := checkText(f.name, f.v, false); err != nil {
			return err
		}
	}
	if m.ManifestSHA256 != "" && !shaPattern.MatchString(m.ManifestSHA256) {
		return invalid("Model.ManifestSHA256 is not 64 lower-case hex digits")
	}
	return nil
}

func checkProbability(name string, p float64) error {
	if math.IsNaN(p) || p < 0 || p > 1 {
		return invalid("%s is %v, want a value in [0, 1]", name, p)
	}
	return nil
}

// checkUID accepts a DICOM UID: dot-separated numbers without leading zeros,
// at most 64 characters.
func checkUID(name, v string, required bool) error {
	if v == "" {
		if required {
			return invalid("%s is empty", name)
		}
		return nil
	}
	if len(v) > 64 || !uidPattern.MatchString(v) {
		return invalid("%s is not a DICOM UID (digits and dots, at most 64 characters)", name)
	}
	return nil
}

// checkText bounds a string and refuses control characters and surrounding
// space, which FHIR's string type does not allow to be significant.
func checkText(name, v string, required bool) error {
	if v == "" {
		if required {
			return invalid("%s is empty", name)
		}
		return nil
	}
	if len(v) > maxTextLen {
		return invalid("%s is %d bytes, at most %d", name, len(v), maxTextLen)
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return invalid("%s contains a control character", name)
		}
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		return invalid("%s has leading or trailing space", name)
	}
	return nil
}
