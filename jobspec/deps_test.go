package jobspec

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// TestDependencies: the coordinator, the site agent and concordctl all
// import this package, so it must not import any of them, nor the
// homomorphic encryption (which only the coordinator and agent need).
func TestDependencies(t *testing.T) {
	const module = "github.com/concord-fl/concord/"
	forbidden := []string{"coordinator", "site-agent", "sim", "cmd", "privacy/he"}
	for _, d := range testenv.Deps(t, "./jobspec") {
		for _, f := range forbidden {
			if d == module+f || strings.HasPrefix(d, module+f+"/") {
				t.Errorf("jobspec depends on %s", d)
			}
		}
	}
}
