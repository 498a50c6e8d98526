package pacs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"

	"github.com/concord-fl/concord/imaging"
)

// wadoAccept asks for instances as stored: transfer-syntax=* forbids the
// PACS to transcode (a lossy transcode would change what a site trains on).
const wadoAccept = `multipart/related; type="application/dicom"; transfer-syntax=*`

// Retrieve implements Source with one WADO-RS series retrieval. An
// instance whose SOP Instance UID cannot be read is passed to store with
// an empty UID, so that the caller counts it as broken.
func (d *DICOMweb) Retrieve(ctx context.Context, s Series, store func(string, []byte) error) error {
	return d.retrieve(ctx, "retrieve series", seriesPath(s), d.opts.MaxInstancesPerSeries, store)
}

// RetrieveInstances implements InstanceRetriever: one WADO-RS instance
// retrieval per UID.
func (d *DICOMweb) RetrieveInstances(ctx context.Context, s Series, uids []string, store func(string, []byte) error) error {
	for _, uid := range uids {
		if err := d.retrieve(ctx, "retrieve instance", seriesPath(s)+"/instances/"+url.PathEscape(uid), 1, store); err != nil {
			return err
		}
	}
	return nil
}

// errStore marks an error returned by the caller's store, passed through
// unwrapped.
type errStore struct{ err error }

func (e errStore) Error() string { return e.err.Error() }

func (d *DICOMweb) retrieve(ctx context.Context, op, path string, maxParts int, store func(string, []byte) error) error {
	resp, done, err := d.get(ctx, op, path, nil, wadoAccept)
	if err != nil {
		return err
	}
	defer done()
	err = readMultipart(resp.Header.Get("Content-Type"), resp.Body, maxParts, d.opts.MaxInstanceBytes, func(part []byte) error {
		if err := store(sopInstanceUID(part), part); err != nil {
			return errStore{err}
		}
		return nil
	})
	var se errStore
	if errors.As(err, &se) {
		return se.err
	}
	if err != nil && ctx.Err() != nil {
		// Cancelled mid-response: the body ends wherever the transport
		// stopped, and what the parser makes of that is not the reason.
		return d.errorf(op, "%w", ctx.Err())
	}
	if err != nil {
		return d.errorf(op, "%w", err)
	}
	return nil
}

// readMultipart reads a multipart/related response of application/dicom
// parts (PS3.18 8.6.1.2), each bounded by maxBytes, at most maxParts.
func readMultipart(contentType string, body io.Reader, maxParts int, maxBytes int64, each func([]byte) error) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/related" || params["boundary"] == "" {
		return fmt.Errorf("response is %q, not multipart/related with a boundary", contentType)
	}
	if t := params["type"]; t != "" && !strings.EqualFold(strings.Trim(t, `"`), "application/dicom") {
		return fmt.Errorf("response parts are %q, not application/dicom", t)
	}
	tail := &tailReader{r: body}
	mr := multipart.NewReader(tail, params["boundary"])
	for n := 0; ; n++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			// The reader also says EOF for a response cut inside a part's
			// headers: only the closing delimiter ends it.
			if !bytes.Contains(tail.last, []byte("--"+params["boundary"]+"--")) {
				return fmt.Errorf("response ends after %d instances without its closing boundary", n)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("part %d: %w", n+1, err)
		}
		if n >= maxParts {
			return fmt.Errorf("more than %d instances in one response", maxParts)
		}
		if ct := p.Header.Get("Content-Type"); ct != "" {
			if pt, _, err := mime.ParseMediaType(ct); err != nil || pt != "application/dicom" {
				return fmt.Errorf("part %d is %q, not application/dicom", n+1, ct)
			}
		}
		b, err := io.ReadAll(io.LimitReader(p, maxBytes+1))
		if err != nil {
			return fmt.Errorf("part %d: %w", n+1, err)
		}
		if int64(len(b)) > maxBytes {
			return fmt.Errorf("part %d is over the limit of %d bytes", n+1, maxBytes)
		}
		if err := each(b); err != nil {
			return err
		}
	}
}

// tailReader keeps the last bytes read, where the closing delimiter is.
type tailReader struct {
	r    io.Reader
	last []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.last = append(t.last, p[:n]...)
	if len(t.last) > 8<<10 {
		t.last = append(t.last[:0], t.last[len(t.last)-4<<10:]...)
	}
	return n, err
}

var (
	tagSOPInstanceUID      = imaging.NewTag(0x0008, 0x0018)
	tagMediaSOPInstanceUID = imaging.NewTag(0x0002, 0x0003)
)

// sopInstanceUID reads an instance's SOP Instance UID, or "" when it cannot.
func sopInstanceUID(part10 []byte) string {
	f, err := imaging.Parse(part10, imaging.DefaultLimits)
	if err != nil || f == nil {
		return ""
	}
	if f.Data != nil {
		if uid := f.Data.String(tagSOPInstanceUID); uid != "" {
			return uid
		}
	}
	if f.Meta != nil {
		return f.Meta.String(tagMediaSOPInstanceUID)
	}
	return ""
}
