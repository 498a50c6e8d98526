package siteagent

import (
	"context"
	"fmt"

	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// MemoryData serves a dataset already in memory, already standardised to
// the job's input size (the simulator's sites, a dry run).
type MemoryData struct {
	Data learning.Dataset
}

// Dataset implements DataSource.
func (m MemoryData) Dataset(_ context.Context, spec *pb.JobSpec) (learning.Dataset, error) {
	return m.Data, checkShape(m.Data, spec)
}

func checkShape(d learning.Dataset, spec *pb.JobSpec) error {
	mm := spec.GetModel()
	if d.C != int(mm.GetChannels()) || d.H != int(mm.GetHeight()) || d.W != int(mm.GetWidth()) {
		return fmt.Errorf("site data is %dx%dx%d, the job's model takes %dx%dx%d: adjust the job's pipeline",
			d.C, d.H, d.W, mm.GetChannels(), mm.GetHeight(), mm.GetWidth())
	}
	for _, y := range d.Y {
		if y < 0 || y >= int(mm.GetClasses()) {
			return fmt.Errorf("label %d outside the job's %d classes", y, mm.GetClasses())
		}
	}
	return nil
}
