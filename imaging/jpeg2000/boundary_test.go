package jpeg2000

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNothingOfConcord: the decoder is pure computation on bytes; it must not
// reach the rest of the module, nor import I/O or networking. (It may use sync: it
// decodes code-blocks on a bounded pool of goroutines, see forEach.)
func TestImportsNothingOfConcord(t *testing.T) {
	const self = "github.com/concord-fl/concord/imaging/jpeg2000"
	cmd := exec.Command("go", "list", "-deps", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no dependencies")
	}
	for _, d := range deps {
		switch {
		case d == self:
		case strings.HasPrefix(d, "github.com/concord-fl/concord"):
			t.Errorf("jpeg2000 depends on %s", d)
		case d == "net" || strings.HasPrefix(d, "net/"):
			t.Errorf("jpeg2000 depends on %s", d)
		}
	}
	direct, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -f .Imports: %v", err)
	}
	for _, d := range strings.Fields(string(direct)) {
		if d == "os" || d == "io" || strings.HasPrefix(d, "os/") {
			t.Errorf("jpeg2000 imports %s", d)
		}
	}
}
