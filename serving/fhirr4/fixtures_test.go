package fhirr4

import "time"

// classification and segmentation are valid Results; tests change copies.
func classification() Result {
	return Result{
		ID:                "res-0001",
		StudyInstanceUID:  "1.2.826.0.1.3680043.8.498.1",
		SeriesInstanceUID: "1.2.826.0.1.3680043.8.498.1.1",
		AccessionNumber:   "ACC-42",
		PatientID:         "MRN-123456",
		PatientIDSystem:   "urn:oid:1.2.36.146.595.217.0.1",
		Issued:            time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC),
		Model: Model{
			Name: "pneumonia-cnn", Version: "v3", DeviceUID: "concord-dev-7f3a",
			ManifestSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			JobID:          "7", Publisher: "Concord consortium",
		},
		Task:          TaskClassification,
		Classes:       []string{"normal", "pneumonia"},
		Probabilities: []float64{0.17, 0.83},
		PositiveClass: 1,
		Threshold:     0.42,
		Decision:      "pneumonia",
	}
}

func segmentation() Result {
	return Result{
		ID:               "res-0002",
		StudyInstanceUID: "1.2.826.0.1.3680043.8.498.2",
		PatientID:        "MRN-654321",
		PatientIDSystem:  "urn:oid:1.2.36.146.595.217.0.1",
		Issued:           time.Date(2026, 3, 4, 6, 0, 0, 0, time.UTC),
		Model: Model{
			Name: "lesion-unet", Version: "v1", DeviceUID: "concord-dev-91c2",
		},
		Task:             TaskSegmentation,
		Threshold:        0.5,
		Decision:         "lesion present",
		SegInstanceUID:   "1.2.826.0.1.3680043.8.498.2.9.1",
		SegmentVolumesML: map[string]float64{"lesion": 12.5, "edema": 3.25},
	}
}
