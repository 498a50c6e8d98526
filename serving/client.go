package serving

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
)

// PostSTOW sends instances as one STOW-RS request to base (the server's
// http://host:port) and returns the status and the response body (at most
// 1 MiB). The simulator, the benchmark and the tests send studies with it.
func PostSTOW(ctx context.Context, base string, instances ...[]byte) (int, []byte, error) {
	return postSTOW(ctx, http.DefaultClient, base+"/dicomweb/studies", instances...)
}

// postSTOW posts instances to a STOW-RS studies URL.
func postSTOW(ctx context.Context, hc *http.Client, url string, instances ...[]byte) (int, []byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, in := range instances {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			return 0, nil, err
		}
		w.Write(in)
	}
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, "POST", url, &body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// Percentile is the nearest-rank percentile q (0..1) of v; 0 when empty.
func Percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
