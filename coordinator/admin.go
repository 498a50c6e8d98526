package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

var errInvalid = errors.New("invalid job")

type adminService struct {
	pb.UnimplementedAdminServer
	c *Coordinator
}

func (a *adminService) caller(ctx context.Context) (Identity, error) {
	id, ok := identify(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	return id, nil
}

// ListSites pages through the sites by name (page_token: the last name of
// the previous page).
func (a *adminService) ListSites(ctx context.Context, req *pb.ListSitesRequest) (*pb.ListSitesResponse, error) {
	c := a.c
	inv := c.inventory()
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.sites))
	for name := range c.sites {
		if name > req.PageToken {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	resp := &pb.ListSitesResponse{}
	if n := pageSize(req.PageSize); len(names) > n {
		names = names[:n]
		resp.NextPageToken = names[n-1]
	}
	for _, name := range names {
		r := c.sites[name]
		s := &pb.Site{Name: name, Version: r.Version, LastSeenUnix: r.LastSeen.Unix(), Examples: r.Examples,
			DataProblem: r.DataProblem, LastFailure: r.LastFailure.proto(), Drift: r.Drift.proto(), WitnessAlarm: r.WitnessAlarm.String()}
		if sess := c.sessions[name]; sess != nil {
			s.Connected = true
		}
		if inv != nil && len(inv.Active(pki.RoleSite, name, c.now())) == 0 {
			s.Revoked = true
		}
		for _, id := range c.order {
			j := c.jobs[id]
			st := j.m.State()
			if j.m.Done() || !slices.Contains(st.Members, name) || st.Delivered[name] {
				continue
			}
			if reason, failed := st.Failed[name]; failed {
				s.CurrentTask = fmt.Sprintf("job %s: %s failed in round %d: %s", id, st.Phase, st.Round, reason)
			} else {
				s.CurrentTask = fmt.Sprintf("job %s %s (round %d)", id, st.Phase, st.Round)
			}
		}
		resp.Sites = append(resp.Sites, s)
	}
	return resp, nil
}

func (a *adminService) SubmitJob(ctx context.Context, req *pb.SubmitJobRequest) (*pb.Job, error) {
	id, err := a.caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.Spec == nil {
		return nil, status.Error(codes.InvalidArgument, "no job spec given")
	}
	submit := a.c.submit
	switch {
	case req.Spec.Tuning != nil:
		submit = a.c.submitTuning
	case req.Spec.Mode == jobspec.ModeLeaveOneSiteOut:
		submit = a.c.submitFolds
	}
	j, err := submit(proto.Clone(req.Spec).(*pb.JobSpec), id)
	if errors.Is(err, errInvalid) {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	return jobProto(j), nil
}

func (a *adminService) job(idStr string) (*job, error) {
	j := a.c.jobs[idStr]
	if j == nil {
		return nil, status.Errorf(codes.NotFound, "job %s does not exist; `concordctl jobs list` shows the jobs", q(idStr))
	}
	return j, nil
}

func (a *adminService) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.Job, error) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	j, err := a.job(req.JobId)
	if err != nil {
		return nil, err
	}
	return jobProto(j), nil
}

// ListJobs pages through the jobs in submission order (page_token: the
// last job id of the previous page). A listed job carries its last round
// summary only; GetJob has them all.
func (a *adminService) ListJobs(ctx context.Context, req *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	start := 0
	if req.PageToken != "" {
		start = len(a.c.order)
		for i, id := range a.c.order {
			if id == req.PageToken {
				start = i + 1
			}
		}
	}
	ids := a.c.order[start:]
	resp := &pb.ListJobsResponse{}
	if n := pageSize(req.PageSize); len(ids) > n {
		ids = ids[:n]
		resp.NextPageToken = ids[n-1]
	}
	for _, id := range ids {
		p := jobProto(a.c.jobs[id])
		if n := len(p.Rounds); n > 1 {
			p.Rounds = p.Rounds[n-1:]
		}
		resp.Jobs = append(resp.Jobs, p)
	}
	return resp, nil
}

func (a *adminService) AbortJob(ctx context.Context, req *pb.AbortJobRequest) (*pb.Job, error) {
	id, err := a.caller(ctx)
	if err != nil {
		return nil, err
	}
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := a.job(req.JobId)
	if err != nil {
		return nil, err
	}
	if j.m.Done() {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s has already %s", req.JobId, j.m.State().Phase)
	}
	reason := bound(req.Reason, maxReasonBytes)
	if reason == "" {
		reason = "no reason given"
	}
	c.stepLocked(j, round.Event{Type: round.EvAbort, Now: c.now(), Actor: id.String(), Reason: reason})
	return jobProto(j), nil
}

// WatchJob streams a job's events: first the logged history, then live
// events, until the job ends or the client goes away.
func (a *adminService) WatchJob(req *pb.WatchJobRequest, stream pb.Admin_WatchJobServer) error {
	c := a.c
	live, cancel := c.bus.subscribe()
	defer cancel()
	c.mu.Lock()
	_, err := a.job(req.JobId)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	var last int64
	send := func(e Event) (bool, error) {
		if e.Seq <= last || (e.JobID != req.JobId) {
			return false, nil
		}
		last = e.Seq
		pe := e.proto()
		c.mu.Lock()
		j := c.jobs[req.JobId]
		pe.Job = jobProto(j)
		done := j.m.Done() && (j.rec.ModelVersion != "" || j.m.State().Phase == round.PhaseAborted || (j.rec.Gate != nil && j.rec.Gate.State != gatePending))
		c.mu.Unlock()
		return done, within(stream.Context(), c.cfg.StreamTimeout, "sending an event", func() error { return stream.Send(pe) })
	}
	for after := int64(0); ; {
		past, more, err := c.bus.events(req.JobId, after, maxPageSize)
		if err != nil {
			return status.Errorf(codes.Internal, "read events: %v", err)
		}
		for _, e := range past {
			if done, err := send(e); err != nil || done {
				return err
			}
			after = e.Seq
		}
		if !more {
			break
		}
	}
	for {
		select {
		case e := <-live:
			if done, err := send(e); err != nil || done {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}

// ListEvents pages through the event log (page_token: the last sequence
// number of the previous page; after_seq starts the listing).
func (a *adminService) ListEvents(ctx context.Context, req *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	after := req.AfterSeq
	if req.PageToken != "" {
		n, err := strconv.ParseInt(req.PageToken, 10, 64)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "page token %s is not one this coordinator gave", q(req.PageToken))
		}
		after = max(after, n)
	}
	evs, more, err := a.c.bus.events(req.JobId, after, pageSize(req.PageSize))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	resp := &pb.ListEventsResponse{}
	for _, e := range evs {
		resp.Events = append(resp.Events, e.proto())
	}
	if more && len(evs) > 0 {
		resp.NextPageToken = strconv.FormatInt(evs[len(evs)-1].Seq, 10)
	}
	return resp, nil
}

func (c *Coordinator) models(jobID string) ([]*pb.ModelVersion, map[string]modelRecord, error) {
	var out []*pb.ModelVersion
	recs := map[string]modelRecord{}
	err := c.st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bModels).ForEach(func(k, v []byte) error {
			var r modelRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			mv := &pb.ModelVersion{}
			if err := proto.Unmarshal(r.Info, mv); err != nil {
				return err
			}
			if jobID == "" || mv.JobId == jobID {
				out = append(out, mv)
				recs[mv.Version] = r
			}
			return nil
		})
	})
	return out, recs, err
}

// ListModels pages through the published versions (with
// include_rejected, the rejected candidates too), oldest first
// (page_token: the last version of the previous page).
func (a *adminService) ListModels(ctx context.Context, req *pb.ListModelsRequest) (*pb.ListModelsResponse, error) {
	mvs, _, err := a.c.models(req.JobId)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if !req.IncludeRejected {
		mvs = slices.DeleteFunc(mvs, func(m *pb.ModelVersion) bool { return m.Status == registry.StatusRejected })
	}
	if req.PageToken != "" {
		i := slices.IndexFunc(mvs, func(m *pb.ModelVersion) bool { return m.Version == req.PageToken })
		mvs = mvs[i+1:]
	}
	resp := &pb.ListModelsResponse{}
	if n := pageSize(req.PageSize); len(mvs) > n {
		mvs = mvs[:n]
		resp.NextPageToken = mvs[n-1].Version
	}
	resp.Models = mvs
	return resp, nil
}

// GetModelInfo returns one version, published or rejected, with its
// signed manifest and validation results but without its weights.
func (a *adminService) GetModelInfo(ctx context.Context, req *pb.GetModelRequest) (*pb.ModelVersion, error) {
	mvs, _, err := a.c.models("")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	for _, m := range mvs {
		if m.Version == req.Version {
			return m, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "model version %s does not exist; `concordctl models list --all` shows the versions", q(bound(req.Version, 256)))
}

// GetModel streams a published model version: its record and weight
// layout first, then the float32 weights in chunks.
func (a *adminService) GetModel(req *pb.GetModelRequest, stream pb.Admin_GetModelServer) error {
	c := a.c
	var mv *pb.ModelVersion
	var blob string
	if jobID, r, ok := strings.Cut(req.Version, "@"); ok {
		// A round checkpoint, JOB@ROUND: the global model after that round.
		n, err := strconv.Atoi(r)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "checkpoint %s: write JOB@ROUND, e.g. 3@5", q(req.Version))
		}
		blob = modelBlob(jobID, n)
		info, err := c.st.blobInfo(blob)
		if err != nil {
			return status.Errorf(codes.NotFound, "job %s has no model after round %d", jobID, n)
		}
		c.mu.Lock()
		params := 0
		if j := c.jobs[jobID]; j != nil {
			params = j.rec.Params
		}
		c.mu.Unlock()
		mv = &pb.ModelVersion{Version: req.Version, JobId: jobID, Round: uint32(n), Params: uint64(params), Sha256: info.SHA256}
	} else {
		mvs, recs, err := c.models("")
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		for _, m := range mvs {
			if m.Version == req.Version {
				mv, blob = m, recs[m.Version].Blob
			}
		}
		if mv == nil {
			return status.Errorf(codes.NotFound, "model version %s does not exist; `concordctl models list` shows the versions", q(req.Version))
		}
	}
	c.mu.Lock()
	var layout []byte
	if j := c.jobs[mv.JobId]; j != nil {
		layout = bytes.Clone(j.rec.Layout)
	}
	c.mu.Unlock()
	first := true
	return c.st.eachChunk(blob, 0, func(i int, data []byte) error {
		m := &pb.ModelChunk{Chunk: &pb.Chunk{Index: uint32(i), Data: data}}
		if first {
			m.Info, m.Layout, first = mv, layout, false
		}
		return within(stream.Context(), c.cfg.StreamTimeout, "sending a model chunk", func() error { return stream.Send(m) })
	})
}

func jobProto(j *job) *pb.Job {
	st := j.m.State()
	state := string(st.Phase)
	switch st.Phase {
	case round.PhaseTraining, round.PhaseAggregate, round.PhaseDecrypting:
		state = "running (" + string(st.Phase) + ")"
	}
	p := &pb.Job{Id: j.rec.ID, Spec: j.spec, State: state, Round: uint32(st.Round), Reason: st.Reason,
		SubmittedBy: j.rec.SubmittedBy, CreatedUnix: j.rec.Created.Unix(), ModelVersion: j.rec.ModelVersion}
	for _, r := range j.rec.Rounds {
		p.Rounds = append(p.Rounds, &pb.RoundSummary{Round: uint32(r.Round), Participants: r.Participants, Contributors: r.Contributors,
			Samples: r.Samples, Metrics: r.Metrics, ModelVersion: r.Model, Seconds: r.Seconds})
	}
	for i := range j.rec.Failures {
		p.Failures = append(p.Failures, j.rec.Failures[i].proto())
	}
	validationProtoLocked(j, p)
	p.FoldGroup, p.HeldOut = j.rec.FoldGroup, j.rec.HeldOut
	p.TuneGroup, p.TuneNote, p.TuneFinal, p.TuneEnded = j.rec.TuneGroup, j.rec.TuneNote, j.rec.TuneFinal, j.rec.TuneEnded
	if j.rec.AwaitingApproval && !j.m.Done() {
		p.State = "awaiting approval"
		p.Reason = j.rec.RetrainReason
	}
	if g := j.rec.Gate; g != nil && g.State == gatePending {
		p.State = "validating"
		for _, vt := range j.rec.Validating {
			if vt.Round == int(j.spec.Rounds) && vt.Role == registry.RoleGlobal {
				p.WaitingFor = append(p.WaitingFor, &pb.WaitingFor{Site: vt.Site, Reason: "validation receipt for the final model"})
			}
		}
		slices.SortFunc(p.WaitingFor, func(a, b *pb.WaitingFor) int { return strings.Compare(a.Site, b.Site) })
	}
	if !j.m.Done() {
		waiting := j.m.Waiting()
		for _, site := range slices.Sorted(maps.Keys(waiting)) {
			p.WaitingFor = append(p.WaitingFor, &pb.WaitingFor{Site: site, Reason: waiting[site]})
		}
	}
	return p
}

func shortHash(b []byte) string {
	h := sha256Hex(b)
	return h[:16]
}

func (a *adminService) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Version: Version, MaxModelParams: a.c.limits().MaxModelParams, MaxPageSize: maxPageSize, MaxStringBytes: maxReasonBytes}, nil
}
