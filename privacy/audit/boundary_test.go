package audit

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// The audit log is read offline by auditors and written by the coordinator
// behind its own API: it must not import grpc or any of our daemons.
func TestDependencies(t *testing.T) {
	const module = "github.com/concord-fl/concord/"
	for _, d := range testenv.Deps(t, "./privacy/audit") {
		if strings.HasPrefix(d, "google.golang.org/grpc") {
			t.Errorf("privacy/audit depends on %s", d)
		}
		if strings.HasPrefix(d, module) && d != module+"privacy/audit" {
			t.Errorf("privacy/audit depends on %s; it stands alone", d)
		}
	}
}
