package pacs

import (
	"context"
	"encoding/json"

	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DICOM JSON attributes (PS3.18 F.2) a query reads.
const (
	tStudyDate         = "00080020"
	tModality          = "00080060"
	tSeriesDescription = "0008103E"
	tSOPClassUID       = "00080016"
	tSOPInstanceUID    = "00080018"
	tTransferSyntax    = "00020010"
	tAvailableTS       = "00083002"
	tBodyPart          = "00180015"
	tStudyUID          = "0020000D"
	tSeriesUID         = "0020000E"
	tSeriesInstances   = "00201209"
	tSamplesPerPixel   = "00280002"
	tFrames            = "00280008"
	tRows              = "00280010"
	tColumns           = "00280011"
	tBitsAllocated     = "00280100"
)

const qidoAccept = "application/dicom+json"

// qidoPage is how many results one QIDO-RS request asks for.
const qidoPage = 500

type dicomJSON map[string]struct {
	Value []json.RawMessage `json:"Value"`
}

func (o dicomJSON) str(tag string) string {
	a, ok := o[tag]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(a.Value[0], &n) == nil {
		return n.String()
	}
	return ""
}

// num reads an integer attribute (IS values may come as numbers or
// strings); -1 when absent or not a number.
func (o dicomJSON) num(tag string) int {
	n, err := strconv.Atoi(o.str(tag))
	if err != nil {
		return -1
	}
	return n
}

// query runs a QIDO-RS query page by page and returns every result; a
// query finding more than MaxResults is refused.
func (d *DICOMweb) query(ctx context.Context, op, path string, q url.Values) ([]dicomJSON, error) {
	var all []dicomJSON
	for offset := 0; ; offset += qidoPage {
		page := url.Values{}
		for k, v := range q {
			page[k] = v
		}
		page.Set("limit", strconv.Itoa(qidoPage))
		page.Set("offset", strconv.Itoa(offset))
		resp, done, err := d.get(ctx, op, path, page, qidoAccept)
		if err != nil {
			return nil, err
		}
		var got []dicomJSON
		body, err := io.ReadAll(io.LimitReader(resp.Body, d.opts.MaxQueryBytes+1))
		done()
		switch {
		case err != nil:
			return nil, d.errorf(op, "read results: %w", err)
		case int64(len(body)) > d.opts.MaxQueryBytes:
			return nil, d.errorf(op, "one page of results is over %d bytes: narrow the query", d.opts.MaxQueryBytes)
		case len(strings.TrimSpace(string(body))) == 0: // 204 No Content: nothing found
		default:
			if err := json.Unmarshal(body, &got); err != nil {
				return nil, d.errorf(op, "results are not DICOM JSON: %w", err)
			}
		}
		all = append(all, got...)
		if len(all) > d.opts.MaxResults {
			return nil, d.errorf(op, "more than %d results: narrow the query (modality, dates, body part)", d.opts.MaxResults)
		}
		if len(got) < qidoPage {
			return all, nil
		}
	}
}

// dateRange is the StudyDate range matching of PS3.4 C.2.2.2.5.
func dateRange(from, to time.Time) string {
	if from.IsZero() && to.IsZero() {
		return ""
	}
	f := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format("20060102")
	}
	return f(from) + "-" + f(to)
}

// FindSeries implements Source: the studies with q's modality and date,
// then each study's series that match all of q.
func (d *DICOMweb) FindSeries(ctx context.Context, q Query) ([]Series, error) {
	sq := url.Values{"includefield": {tStudyDate}}
	if q.Modality != "" {
		sq.Set("ModalitiesInStudy", q.Modality)
	}
	if r := dateRange(q.From, q.To); r != "" {
		sq.Set("StudyDate", r)
	}
	studies, err := d.query(ctx, "query studies", "/studies", sq)
	if err != nil {
		return nil, err
	}
	serq := url.Values{"includefield": {tBodyPart, tSeriesDescription, tSeriesInstances, tModality}}
	if q.Modality != "" {
		serq.Set("Modality", q.Modality)
	}
	if q.BodyPart != "" {
		serq.Set("BodyPartExamined", q.BodyPart)
	}
	if q.SeriesDescription != "" {
		serq.Set("SeriesDescription", q.SeriesDescription)
	}
	var out []Series
	for _, st := range studies {
		uid := st.str(tStudyUID)
		if uid == "" {
			return nil, d.errorf("query studies", "a result has no Study Instance UID")
		}
		series, err := d.query(ctx, "query series", "/studies/"+url.PathEscape(uid)+"/series", serq)
		if err != nil {
			return nil, err
		}
		for _, se := range series {
			s := Series{StudyInstanceUID: uid, SeriesInstanceUID: se.str(tSeriesUID), Modality: se.str(tModality),
				BodyPart: se.str(tBodyPart), Description: se.str(tSeriesDescription), StudyDate: st.str(tStudyDate),
				Instances: se.num(tSeriesInstances)}
			if s.SeriesInstanceUID == "" {
				return nil, d.errorf("query series", "a result has no Series Instance UID")
			}
			out = append(out, s)
			if len(out) > d.opts.MaxResults {
				return nil, d.errorf("query series", "more than %d series: narrow the query (modality, dates, body part)", d.opts.MaxResults)
			}
		}
	}
	return out, nil
}

// ListInstances implements Lister with an instance-level QIDO-RS query.
// The transfer syntax is known only where the PACS returns it (Transfer
// Syntax UID or Available Transfer Syntax UID); Orthanc gives neither.
func (d *DICOMweb) ListInstances(ctx context.Context, s Series) ([]Instance, error) {
	q := url.Values{"includefield": {tSOPClassUID, tTransferSyntax, tAvailableTS, tRows, tColumns, tBitsAllocated, tSamplesPerPixel, tFrames}}
	res, err := d.query(ctx, "query instances", seriesPath(s)+"/instances", q)
	if err != nil {
		return nil, err
	}
	if len(res) > d.opts.MaxInstancesPerSeries {
		return nil, d.errorf("query instances", "a series has %d instances, over the limit of %d", len(res), d.opts.MaxInstancesPerSeries)
	}
	out := make([]Instance, 0, len(res))
	for _, r := range res {
		in := Instance{SOPInstanceUID: r.str(tSOPInstanceUID), SOPClassUID: r.str(tSOPClassUID),
			TransferSyntaxUID: r.str(tTransferSyntax), Rows: r.num(tRows), Columns: r.num(tColumns),
			BitsAllocated: r.num(tBitsAllocated), SamplesPerPixel: r.num(tSamplesPerPixel), Frames: max(r.num(tFrames), 0)}
		if in.TransferSyntaxUID == "" {
			in.TransferSyntaxUID = r.str(tAvailableTS)
		}
		if in.SOPInstanceUID == "" {
			return nil, d.errorf("query instances", "a result has no SOP Instance UID")
		}
		out = append(out, in)
	}
	return out, nil
}

func seriesPath(s Series) string {
	return "/studies/" + url.PathEscape(s.StudyInstanceUID) + "/series/" + url.PathEscape(s.SeriesInstanceUID)
}
