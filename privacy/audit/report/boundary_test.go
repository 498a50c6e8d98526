package report_test

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

const module = "github.com/concord-fl/concord"

// The report package is a model and its renderers: it must stay free of the
// wire, the coordinator and the packages whose data it reports, so that
// it can be filled from anywhere and read without them.
func TestReportImportsNothingItReports(t *testing.T) {
	for _, d := range testenv.Deps(t, "./privacy/audit/report") {
		switch {
		case d == module+"/privacy/audit", d == module+"/privacy/dp", strings.HasPrefix(d, module+"/privacy/dp/"),
			strings.HasPrefix(d, module+"/coordinator"), strings.HasPrefix(d, module+"/site-agent"),
			strings.HasPrefix(d, module+"/proto"), strings.HasPrefix(d, "google.golang.org/grpc"),
			strings.HasPrefix(d, "github.com/chromedp/"):
			t.Errorf("package report depends on %s", d)
		}
	}
}
