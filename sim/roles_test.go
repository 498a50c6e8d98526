package sim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestRoleActionMatrix calls every Admin and Agent method with a
// certificate of every role against the running coordinator: a role may
// call exactly what the table says, everything else is PermissionDenied.
// No method of any role changes the audit log (none exists to do so).
func TestRoleActionMatrix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type call func(ctx context.Context, admin pb.AdminClient, agent pb.AgentClient) error
	first := func(recv func() error) error { return recv() }
	calls := map[string]call{
		"ListSites": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.ListSites(ctx, &pb.ListSitesRequest{})
			return err
		},
		"SubmitJob": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.SubmitJob(ctx, &pb.SubmitJobRequest{})
			return err
		},
		"GetJob": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.GetJob(ctx, &pb.GetJobRequest{JobId: "404"})
			return err
		},
		"ListJobs": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.ListJobs(ctx, &pb.ListJobsRequest{})
			return err
		},
		"WatchJob": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			s, err := a.WatchJob(ctx, &pb.WatchJobRequest{JobId: "404"})
			if err != nil {
				return err
			}
			return first(func() error { _, err := s.Recv(); return err })
		},
		"AbortJob": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.AbortJob(ctx, &pb.AbortJobRequest{JobId: "404"})
			return err
		},
		"ApproveJob": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.ApproveJob(ctx, &pb.ApproveJobRequest{JobId: "1"})
			return err
		},
		"GetModelInfo": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.GetModelInfo(ctx, &pb.GetModelRequest{Version: "v1"})
			return err
		},
		"ListModels": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.ListModels(ctx, &pb.ListModelsRequest{})
			return err
		},
		"GetModel": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			s, err := a.GetModel(ctx, &pb.GetModelRequest{Version: "v404"})
			if err != nil {
				return err
			}
			return first(func() error { _, err := s.Recv(); return err })
		},
		"ListEvents": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.ListEvents(ctx, &pb.ListEventsRequest{})
			return err
		},
		"Info": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			_, err := a.Info(ctx, &pb.InfoRequest{})
			return err
		},
		"ExportAudit": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			s, err := a.ExportAudit(ctx, &pb.ExportAuditRequest{JobId: "404"})
			if err != nil {
				return err
			}
			return first(func() error { _, err := s.Recv(); return err })
		},
		"Backup": func(ctx context.Context, a pb.AdminClient, _ pb.AgentClient) error {
			s, err := a.Backup(ctx, &pb.BackupRequest{})
			if err != nil {
				return err
			}
			return first(func() error { _, err := s.Recv(); return err })
		},
		"Download": func(ctx context.Context, _ pb.AdminClient, g pb.AgentClient) error {
			s, err := g.Download(ctx, &pb.DownloadRequest{Blob: "model/404/0"})
			if err != nil {
				return err
			}
			return first(func() error { _, err := s.Recv(); return err })
		},
		"Upload": func(ctx context.Context, _ pb.AdminClient, g pb.AgentClient) error {
			s, err := g.Upload(ctx)
			if err != nil {
				return err
			}
			_ = s.Send(&pb.UploadMessage{Msg: &pb.UploadMessage_Header{Header: &pb.UploadHeader{JobId: "404", Kind: pb.UploadKind_UPLOAD_KIND_UPDATE}}})
			_, err = s.Recv() // the call's status, also when Send saw the stream end
			return err
		},
	}
	// The matrix: what each role may do.
	allowed := map[pki.Role][]string{
		pki.RoleAdmin:    {"ListSites", "SubmitJob", "GetJob", "ListJobs", "WatchJob", "AbortJob", "ApproveJob", "ListModels", "GetModelInfo", "GetModel", "ListEvents", "Info", "ExportAudit", "Backup"},
		pki.RoleAuditor:  {"ListSites", "GetJob", "ListJobs", "WatchJob", "ListModels", "GetModelInfo", "GetModel", "ListEvents", "Info", "ExportAudit"},
		pki.RoleObserver: {"ListSites", "GetJob", "ListJobs", "WatchJob", "ListModels", "GetModelInfo", "Info"},
		pki.RoleSite:     {"Download", "Upload"},
	}
	for _, role := range []pki.Role{pki.RoleAdmin, pki.RoleAuditor, pki.RoleObserver, pki.RoleSite} {
		kit, err := f.Kit(role, fmt.Sprintf("matrix-%s", role))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := f.Dial(kit)
		if err != nil {
			t.Fatal(err)
		}
		admin, agent := pb.NewAdminClient(conn), pb.NewAgentClient(conn)
		for name, c := range calls {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c(cctx, admin, agent)
			cancel()
			may := false
			for _, a := range allowed[role] {
				may = may || a == name
			}
			// The authorizer's refusal, not a later check of the call's
			// arguments (a site may not read a job it is not part of).
			denied := status.Code(err) == codes.PermissionDenied && strings.Contains(err.Error(), "may not call")
			if may == denied {
				t.Errorf("%s calling %s: %v (allowed: %v)", role, name, err, may)
			}
		}
		conn.Close()
	}
}
