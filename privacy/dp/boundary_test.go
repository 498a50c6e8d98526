package dp

import (
	"os/exec"
	"strings"
	"testing"
)

// privacy/dp is math: no network code, and nothing of Concord's but the
// standard library, so that any binary (and the offline CLI) can account.
func TestDPImportsNoNetworkCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no dependencies")
	}
	for _, d := range deps {
		if strings.Contains(d, "grpc") || strings.Contains(d, "net/http") ||
			strings.HasPrefix(d, "github.com/concord-fl/concord/") && d != "github.com/concord-fl/concord/privacy/dp" {
			t.Errorf("privacy/dp depends on %s", d)
		}
	}
}
