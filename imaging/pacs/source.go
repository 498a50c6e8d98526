// Package pacs brings a hospital's images out of its PACS into the site
// agent: a Source queries the archive for series and retrieves their
// instances, over DICOMweb (QIDO-RS and WADO-RS) or DIMSE (C-FIND and
// C-GET/C-MOVE). What a site fetched is recorded in its state, so intake is
// incremental and resumable.
package pacs

import (
	"context"
	"time"
)

// Query selects the series a site trains on. Empty fields do not filter.
type Query struct {
	// Modality is the series' Modality (0008,0060), e.g. "CR" or "CT".
	Modality string
	// From and To bound the Study Date (0008,0020), inclusive; zero: open.
	From, To time.Time
	// BodyPart is Body Part Examined (0018,0015), e.g. "CHEST".
	BodyPart string
	// SeriesDescription (0008,103E) matches with DICOM wildcards (* and ?).
	SeriesDescription string
}

// Series is one series a query found.
type Series struct {
	StudyInstanceUID  string
	SeriesInstanceUID string
	Modality          string
	BodyPart          string
	Description       string
	StudyDate         string
	// Instances is Number of Series Related Instances when the PACS gives
	// it; -1 when it does not.
	Instances int
}

// Source is a PACS a site agent reads from. Implementations bound every
// response they read (sizes, counts, time) and return errors that name the
// PACS and the reason.
type Source interface {
	// FindSeries lists the series matching q.
	FindSeries(ctx context.Context, q Query) ([]Series, error)
	// Retrieve calls store once per instance of s with the SOP Instance
	// UID and the instance as a DICOM Part 10 file. An error from store
	// stops the retrieval and is returned.
	Retrieve(ctx context.Context, s Series, store func(sopInstanceUID string, part10 []byte) error) error
	// Close releases connections.
	Close() error
}
