package siteagent

import (
	"context"
	"errors"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

var errNoSecure = errors.New("secure aggregation is not wired yet")

func (a *Agent) encryptUpdate(t *pb.Task, delta []float32, weight float64) ([][]byte, error) {
	return nil, errNoSecure
}
func (a *Agent) keySetup(ctx context.Context, t *pb.Task) error  { return errNoSecure }
func (a *Agent) keyShares(ctx context.Context, t *pb.Task) error { return errNoSecure }
func (a *Agent) decrypt(ctx context.Context, t *pb.Task) error   { return errNoSecure }
