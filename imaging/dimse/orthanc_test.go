package dimse

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"

	"github.com/concord-fl/concord/internal/testorthanc"
)

// orthanc is a real Orthanc (Debian's, internal/testorthanc) loaded with
// the test corpus, with called-AE-title checking on so that rejection can
// be tested; it knows our AE title as a modality.
type orthanc struct {
	*testorthanc.Orthanc
	dicomAddr string
}

const (
	orthancAET = "ORTHANC"
	ourAET     = "CONCORD"
)

// loadedOrthanc starts an Orthanc for the test, stopped at its end.
func loadedOrthanc(t *testing.T) *orthanc {
	t.Helper()
	files := corpus(t)
	o := testorthanc.Start(t, testorthanc.Options{AET: orthancAET, CheckCalledAET: true,
		// The port is set per C-MOVE test (setModalityPort).
		Modalities: map[string]string{ourAET: "127.0.0.1:1"}})
	for _, f := range files {
		o.Upload(t, f.path)
	}
	return &orthanc{Orthanc: o, dicomAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.DICOMPort))}
}

// setModalityPort tells Orthanc where our storage SCP listens.
func (o *orthanc) setModalityPort(port int) error {
	return o.SetModality(ourAET, fmt.Sprintf("127.0.0.1:%d", port))
}

// url is the DICOM URL of this Orthanc, with extra query parameters.
func (o *orthanc) url(called, query string) *url.URL {
	return &url.URL{Scheme: "dicom", User: url.User(called), Host: o.dicomAddr, RawQuery: query}
}
