package jobspec

import (
	"testing"

	"github.com/concord-fl/concord/evaluation"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func TestAssessOptions(t *testing.T) {
	for _, c := range []struct {
		spec *pb.JobSpec
		want evaluation.AssessOptions
	}{
		{&pb.JobSpec{Validation: &pb.ValidationSpec{AtSpecificity: 0.9, MinSubgroupCount: 25, MinAuc: 0.8}}, evaluation.AssessOptions{AtSpecificity: 0.9, MinSubgroup: 25}},
		{&pb.JobSpec{}, evaluation.AssessOptions{}}, // evaluation's defaults apply
	} {
		if got := AssessOptions(c.spec); got != c.want {
			t.Errorf("%v: %+v, want %+v", c.spec, got, c.want)
		}
	}
}
