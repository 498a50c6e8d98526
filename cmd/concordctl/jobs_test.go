package main

import (
	"strings"
	"testing"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestPrintPooled: the pooled section shows counts and intervals, marks
// suppressed cells, names unknown values, and says why it is missing.
func TestPrintPooled(t *testing.T) {
	var b strings.Builder
	printPooled(&b, &pb.PooledSubgroups{State: "decrypted", Sites: []string{"v1", "v2"}, Note: "not pooled: manufacturer", Cells: []*pb.PooledCell{
		{Field: "sex", Value: "F", Examples: 30, Confusion: map[string]uint64{"tp": 10, "fp": 2, "tn": 15, "fn": 3},
			Metrics: map[string]float64{"sensitivity": 0.769}, Lower: map[string]float64{"sensitivity": 0.497}, Upper: map[string]float64{"sensitivity": 0.918}},
		{Field: "sex", Value: "", Suppressed: true},
	}})
	out := b.String()
	for _, want := range []string{"over v1, v2", "sex  ", "0.769 [0.497, 0.918]", "unknown", "suppressed", "not pooled: manufacturer"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printPooled(&b, &pb.PooledSubgroups{State: "unavailable", Reason: "refused: v1 is the only contributor"})
	if !strings.Contains(b.String(), "unavailable (refused: v1 is the only contributor)") {
		t.Errorf("unavailable pool printed as:\n%s", b.String())
	}
}
