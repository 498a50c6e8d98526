package dimse

import (
	"net/url"

	"github.com/concord-fl/concord/imaging/pacs"
)

// init makes pacs.Open handle dicom:// URLs with this client; pacs.Open
// adds its throttle (requests per second, operations in flight).
func init() {
	pacs.Register("dicom", func(u *url.URL, o pacs.Options) (pacs.Source, error) {
		return Open(u, Options{Timeout: o.Timeout, MaxInstanceBytes: o.MaxInstanceBytes, MaxResults: o.MaxResults})
	})
}
