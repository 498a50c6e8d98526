package dp

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// privacy/dp is math: no network code, and nothing of Concord's but the
// signature scheme its receipts share with validation receipts
// (internal/signenv, standard library only), so that any binary (and the
// offline CLI) can account.
func TestDPImportsNoNetworkCode(t *testing.T) {
	allowed := map[string]bool{"github.com/concord-fl/concord/privacy/dp": true, "github.com/concord-fl/concord/internal/signenv": true}
	for _, d := range testenv.Deps(t, "./privacy/dp") {
		if strings.Contains(d, "grpc") || strings.Contains(d, "net/http") ||
			strings.HasPrefix(d, "github.com/concord-fl/concord/") && !allowed[d] {
			t.Errorf("privacy/dp depends on %s", d)
		}
	}
}
