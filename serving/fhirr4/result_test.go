package fhirr4

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestBundleRefusesInvalidResult(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*Result)
		reason string
	}{
		{"empty study UID", func(r *Result) { r.StudyInstanceUID = "" }, "StudyInstanceUID is empty"},
		{"study UID not a UID", func(r *Result) { r.StudyInstanceUID = "1.2.03" }, "StudyInstanceUID is not a DICOM UID"},
		{"series UID too long", func(r *Result) { r.SeriesInstanceUID = "1." + strings.Repeat("2", 63) }, "SeriesInstanceUID is not a DICOM UID"},
		{"empty ID", func(r *Result) { r.ID = "" }, "ID must be"},
		{"ID with slash", func(r *Result) { r.ID = "a/b" }, "ID must be"},
		{"no patient", func(r *Result) { r.PatientID = "" }, "PatientID is empty"},
		{"no patient system", func(r *Result) { r.PatientIDSystem = "" }, "PatientIDSystem is empty"},
		{"patient system not a URI", func(r *Result) { r.PatientIDSystem = "MRN" }, "PatientIDSystem must be an absolute URI"},
		{"control char", func(r *Result) { r.AccessionNumber = "A\nB" }, "AccessionNumber contains a control character"},
		{"no issued", func(r *Result) { r.Issued = time.Time{} }, "Issued is not set"},
		{"no device UID", func(r *Result) { r.Model.DeviceUID = "" }, "Model.DeviceUID is empty"},
		{"bad manifest hash", func(r *Result) { r.Model.ManifestSHA256 = "abc" }, "Model.ManifestSHA256"},
		{"unknown task", func(r *Result) { r.Task = "detection" }, `Task "detection"`},
		{"probability above 1", func(r *Result) { r.Probabilities[1] = 1.2 }, "Probabilities[1] is 1.2"},
		{"probability negative", func(r *Result) { r.Probabilities[0] = -0.1 }, "Probabilities[0]"},
		{"probability NaN", func(r *Result) { r.Probabilities[0] = math.NaN() }, "Probabilities[0] is NaN"},
		{"length mismatch", func(r *Result) { r.Probabilities = r.Probabilities[:1] }, "1 probabilities for 2 classes"},
		{"one class", func(r *Result) { r.Classes = r.Classes[:1]; r.Probabilities = r.Probabilities[:1] }, "at least 2 classes"},
		{"duplicate class", func(r *Result) { r.Classes[0] = "pneumonia" }, "listed twice"},
		{"positive class out of range", func(r *Result) { r.PositiveClass = 2 }, "PositiveClass 2"},
		{"decision not a class", func(r *Result) { r.Decision = "maybe" }, `Decision "maybe"`},
		{"threshold above 1", func(r *Result) { r.Threshold = 2 }, "Threshold is 2"},
		{"classification with SEG", func(r *Result) { r.SegInstanceUID = "1.2.3" }, "carries no segmentation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := classification()
			r.Probabilities = append([]float64(nil), r.Probabilities...)
			r.Classes = append([]string(nil), r.Classes...)
			tc.edit(&r)
			_, err := Bundle(r)
			if !errors.Is(err, ErrInvalidResult) {
				t.Fatalf("Bundle: %v, want ErrInvalidResult", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if strings.Contains(err.Error(), r.PatientID) && r.PatientID != "" {
				t.Errorf("error %q names the patient", err)
			}
		})
	}
}

func TestBundleRefusesInvalidSegmentation(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*Result)
		reason string
	}{
		{"no SEG UID", func(r *Result) { r.SegInstanceUID = "" }, "SegInstanceUID is empty"},
		{"negative volume", func(r *Result) { r.SegmentVolumesML = map[string]float64{"lesion": -1} }, `volume of segment "lesion" is -1`},
		{"infinite volume", func(r *Result) { r.SegmentVolumesML = map[string]float64{"lesion": math.Inf(1)} }, "finite"},
		{"probabilities without classes", func(r *Result) { r.Probabilities = []float64{0.5} }, "1 probabilities for 0 classes"},
		{"negative area", func(r *Result) { r.SegmentAreasMM2 = map[string]float64{"nodule": -2} }, `area of segment "nodule" is -2`},
		{"volume and area", func(r *Result) { r.SegmentAreasMM2 = map[string]float64{"lesion": 2} }, `segment "lesion" has both`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := segmentation()
			tc.edit(&r)
			_, err := Bundle(r)
			if !errors.Is(err, ErrInvalidResult) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Bundle: %v, want ErrInvalidResult saying %q", err, tc.reason)
			}
		})
	}
}
