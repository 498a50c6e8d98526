// Package pacs brings a hospital's images out of its PACS into the site
// agent: a Source queries the archive for series and retrieves their
// instances, over DICOMweb (QIDO-RS and WADO-RS) or DIMSE (C-FIND and
// C-GET/C-MOVE). What a site fetched is recorded in its state, so intake is
// incremental and resumable.
//
// Design choices:
//
//   - Open is the one place where a URL's scheme picks the protocol
//     (http/https: DICOMweb; dicom://: DIMSE). Abilities beyond Source are
//     optional interfaces (Lister, InstanceRetriever), as in
//     database/sql/driver: the intake and Summarize use them when present.
//   - DICOMweb retrieves with transfer-syntax=*, so the PACS sends what it
//     stores and never transcodes; every response is bounded (bytes per
//     instance, instances per series, results per query, bytes per query
//     page, time per request) and a response cut short is an error.
//   - Errors name the PACS (its URL, password redacted), the operation and
//     the reason (HTTP status, Orthanc's message), never a UID.
//   - One throttle per Source bounds requests in flight and paces their
//     starts; intake workers above it only queue.
//   - Intake records instances in the agent's bbolt state in the
//     transaction that caches them, in batches (a commit per instance costs
//     more than the transfer) flushed whenever a retrieval stops, and marks
//     a series done at its end. A restart skips done series and, for a
//     series begun, retrieves only the instances it lacks (instance-level
//     QIDO, then WADO-RS per instance); only a crash loses a batch.
//   - The cache is a folder of Part 10 files named by a hash of the SOP
//     Instance UID, bounded in bytes: least-recently-used files are evicted
//     before a new one is written, so the bound is never passed; an evicted
//     instance stays recorded and is retrieved again when the data is read.
//   - Labels come from a CSV keyed by Study or SOP Instance UID; an
//     instance's own row wins over its study's. (The site agent can also
//     derive them from SEG objects in the same studies.)
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

// Instance is one instance of a series, as an instance-level query gives it
// (QIDO-RS or C-FIND at IMAGE level), without its pixel data.
type Instance struct {
	SOPInstanceUID string
	SOPClassUID    string
	// TransferSyntaxUID is empty when the PACS does not say.
	TransferSyntaxUID string
	Rows, Columns     int
	BitsAllocated     int
	SamplesPerPixel   int
	// Frames is Number of Frames; 0 when absent (one frame).
	Frames int
}

// EstimatedBytes is the size of the instance's pixel data uncompressed, or 0
// when the query did not give its geometry: what a retrieval would bring at
// most for uncompressed images, an upper bound for compressed ones.
func (i Instance) EstimatedBytes() int64 {
	if i.Rows <= 0 || i.Columns <= 0 || i.BitsAllocated <= 0 {
		return 0
	}
	spp, frames := max(i.SamplesPerPixel, 1), max(i.Frames, 1)
	return int64(i.Rows) * int64(i.Columns) * int64(spp) * int64(frames) * int64((i.BitsAllocated+7)/8)
}

// Lister is an optional ability of a Source: list a series' instances
// without retrieving them. Scan summaries and resumed intake use it.
type Lister interface {
	ListInstances(ctx context.Context, s Series) ([]Instance, error)
}

// InstanceRetriever is an optional ability of a Source: retrieve chosen
// instances of a series, so a resumed intake fetches only what it lacks.
// store is called as in Source.Retrieve.
type InstanceRetriever interface {
	RetrieveInstances(ctx context.Context, s Series, sopInstanceUIDs []string, store func(sopInstanceUID string, part10 []byte) error) error
}
