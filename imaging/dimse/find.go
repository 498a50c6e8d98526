package dimse

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/concord-fl/concord/imaging/pacs"
)

// FindSeries queries study-root C-FIND at STUDY level (study date and
// modalities in study), then at SERIES level in each matching study
// (modality, body part, series description), on one association.
func (c *Client) FindSeries(ctx context.Context, q pacs.Query) ([]pacs.Series, error) {
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return nil, fmt.Errorf("%s: study date range ends (%s) before it starts (%s)", c, q.To.Format(time.DateOnly), q.From.Format(time.DateOnly))
	}
	a, err := c.dial(ctx, []presCtx{{id: 1, abstract: findStudyRoot, syntaxes: []string{implicitLE}}}, nil)
	if err != nil {
		return nil, err
	}
	defer a.close()
	studyKeys := []element{
		{tagQueryLevel, []byte("STUDY")},
		{tagStudyUID, nil},
		{tagStudyDate, []byte(dateRange(q.From, q.To))},
		{tagModalitiesStudy, []byte(q.Modality)},
	}
	studies, err := c.find(ctx, a, studyKeys, c.opt.MaxResults)
	if err != nil {
		return nil, err
	}
	var out []pacs.Series
	for _, st := range studies {
		uid := st.str(tagStudyUID)
		if uid == "" {
			return nil, a.errf("%w: a STUDY level match has no Study Instance UID", ErrProtocol)
		}
		if !inRange(st.str(tagStudyDate), q.From, q.To) {
			continue
		}
		seriesKeys := []element{
			{tagQueryLevel, []byte("SERIES")},
			{tagStudyUID, []byte(uid)},
			{tagSeriesUID, nil},
			{tagModality, []byte(q.Modality)},
			{tagBodyPart, []byte(q.BodyPart)},
			{tagSeriesDesc, []byte(q.SeriesDescription)},
			{tagSeriesInstances, nil},
		}
		series, err := c.find(ctx, a, seriesKeys, c.opt.MaxResults-len(out))
		if err != nil {
			return nil, err
		}
		for _, s := range series {
			r := pacs.Series{
				StudyInstanceUID:  uid,
				SeriesInstanceUID: s.str(tagSeriesUID),
				Modality:          s.str(tagModality),
				BodyPart:          s.str(tagBodyPart),
				Description:       s.str(tagSeriesDesc),
				StudyDate:         st.str(tagStudyDate),
				Instances:         -1,
			}
			if r.SeriesInstanceUID == "" {
				return nil, a.errf("%w: a SERIES level match has no Series Instance UID", ErrProtocol)
			}
			if n, err := strconv.Atoi(s.str(tagSeriesInstances)); err == nil && n >= 0 {
				r.Instances = n
			}
			out = append(out, r)
		}
	}
	return out, a.releaseAssoc()
}

// dateRange renders From/To as a DICOM date range ("" when open both ways).
func dateRange(from, to time.Time) string {
	const layout = "20060102"
	switch {
	case from.IsZero() && to.IsZero():
		return ""
	case to.IsZero():
		return from.Format(layout) + "-"
	case from.IsZero():
		return "-" + to.Format(layout)
	}
	return from.Format(layout) + "-" + to.Format(layout)
}

// inRange re-checks a study's date against the query's range: PACSes
// differ on whether a study without a date matches an open-ended range
// (Orthanc lets it through "-YYYYMMDD"), and a site must get the same
// series from any of them. A date range excludes undated studies.
func inRange(studyDate string, from, to time.Time) bool {
	if from.IsZero() && to.IsZero() {
		return true
	}
	if _, err := time.Parse("20060102", studyDate); err != nil {
		return false
	}
	return (from.IsZero() || studyDate >= from.Format("20060102")) && (to.IsZero() || studyDate <= to.Format("20060102"))
}

// find runs one C-FIND and collects its matches, at most max of them.
func (c *Client) find(ctx context.Context, a *assoc, keys []element, max int) ([]elements, error) {
	rsp, err := a.request(ctx, findStudyRoot, cFindRQ, nil, encodeElements(keys))
	if err != nil {
		return nil, err
	}
	id := a.msgID
	var out []elements
	for {
		cmd := rsp.cmd
		if cmd.field != cFindRSP || cmd.messageID != id {
			a.abort(2, 2)
			return nil, a.errf("%w: got command 0x%04X for message %d while waiting for C-FIND-RSP to %d", ErrProtocol, cmd.field, cmd.messageID, id)
		}
		switch {
		case isPending(cmd.status):
			if rsp.data == nil {
				a.abort(2, 6)
				return nil, a.errf("%w: pending C-FIND response without identifier", ErrProtocol)
			}
			if len(out) >= max {
				a.abort(0, 0)
				return nil, a.errf("C-FIND returned more than %d matches; narrow the query", c.opt.MaxResults)
			}
			m, err := decodeElements(rsp.data)
			if err != nil {
				a.abort(2, 6)
				return nil, a.errf("C-FIND match: %w", err)
			}
			out = append(out, m)
		case isSuccess(cmd.status):
			return out, nil
		default:
			return nil, a.errf("%w", &statusError{op: "C-FIND", status: cmd.status, comment: cmd.comment})
		}
		if rsp, err = a.receive(ctx); err != nil {
			return nil, err
		}
	}
}
