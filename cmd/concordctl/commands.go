package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func splitHost(addr string) (string, string, error) { return net.SplitHostPort(addr) }

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) }

func sitesList(ctx context.Context, e *env, args []string) error {
	resp, err := e.admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.out, resp)
	}
	if len(resp.Sites) == 0 {
		fmt.Fprintln(e.out, "No site has connected yet. Issue a kit with `concordctl pki issue --site NAME` and start its agent.")
		return nil
	}
	tw := table(e.out)
	fmt.Fprintln(tw, "SITE\tSTATUS\tAGENT\tLAST SEEN\tEXAMPLES\tCURRENT TASK")
	for _, s := range resp.Sites {
		st := "offline"
		if s.Connected {
			st = "connected"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, st, s.Version, ago(s.LastSeenUnix), s.Examples, orDash(s.CurrentTask))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func jobsSubmit(ctx context.Context, e *env, args []string) error {
	if err := need(args, 1, "the job file: concordctl jobs submit FILE"); err != nil {
		return err
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	spec, err := jobspec.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	job, err := e.admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.out, job)
	}
	fmt.Fprintf(e.out, "Job %s submitted (%s): %d rounds, min %d sites, %s, secure aggregation %s.\nFollow it with: concordctl jobs watch %s\n",
		job.Id, spec.Name, spec.Rounds, spec.MinSites, spec.Aggregation.Strategy, spec.Privacy.SecureAggregation, job.Id)
	return nil
}

func jobsList(ctx context.Context, e *env, args []string) error {
	resp, err := e.admin.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.out, resp)
	}
	tw := table(e.out)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tROUND\tSUBMITTED BY\tMODEL")
	for _, j := range resp.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.Id, j.Spec.GetName(), j.State, j.Round, j.Spec.GetRounds(), j.SubmittedBy, orDash(j.ModelVersion))
	}
	return tw.Flush()
}

func jobsStatus(ctx context.Context, e *env, args []string) error {
	if err := need(args, 1, "a job ID: concordctl jobs status ID"); err != nil {
		return err
	}
	j, err := e.admin.GetJob(ctx, &pb.GetJobRequest{JobId: args[0]})
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.out, j)
	}
	printJob(e.out, j)
	return nil
}

func printJob(w io.Writer, j *pb.Job) {
	fmt.Fprintf(w, "Job %s  %s\n  state: %s\n  round: %d of %d\n  submitted by %s at %s\n",
		j.Id, j.Spec.GetName(), j.State, j.Round, j.Spec.GetRounds(), j.SubmittedBy, time.Unix(j.CreatedUnix, 0).UTC().Format(time.RFC3339))
	if j.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", j.Reason)
	}
	if j.ModelVersion != "" {
		fmt.Fprintf(w, "  model: %s (concordctl models get %s)\n", j.ModelVersion, j.ModelVersion)
	}
	if len(j.Rounds) > 0 {
		tw := table(w)
		fmt.Fprintln(tw, "\n  ROUND\tSITES\tSAMPLES\tSECONDS\tMETRICS")
		for _, r := range j.Rounds {
			var ms []string
			for _, k := range sortedKeys(r.Metrics) {
				ms = append(ms, fmt.Sprintf("%s=%.4f", k, r.Metrics[k]))
			}
			fmt.Fprintf(tw, "  %d\t%d/%d\t%d\t%.1f\t%s\n", r.Round, len(r.Contributors), len(r.Participants), r.Samples, r.Seconds, strings.Join(ms, " "))
		}
		tw.Flush()
	}
}

func jobsWatch(ctx context.Context, e *env, args []string) error {
	if err := need(args, 1, "a job ID: concordctl jobs watch ID"); err != nil {
		return err
	}
	stream, err := e.admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: args[0]})
	if err != nil {
		return err
	}
	var last *pb.Job
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		last = ev.Job
		if e.json {
			b, _ := protojson.Marshal(ev)
			fmt.Fprintln(e.out, string(b))
			continue
		}
		ts := time.UnixMilli(ev.UnixMillis).Format("15:04:05")
		who := ""
		if ev.Site != "" {
			who = " [" + ev.Site + "]"
		}
		where := ""
		if ev.Round > 0 && !strings.HasPrefix(ev.Detail, "round ") {
			where = fmt.Sprintf(" round %d", ev.Round)
		}
		fmt.Fprintf(e.out, "%s%s%s %s\n", ts, where, who, ev.Detail)
	}
	if last != nil && !e.json {
		fmt.Fprintln(e.out)
		printJob(e.out, last)
		if last.State == "aborted" {
			return fmt.Errorf("job %s aborted: %s", last.Id, last.Reason)
		}
	}
	return nil
}

func jobsAbort(ctx context.Context, e *env, args []string) error {
	if err := need(args, 1, "a job ID: concordctl jobs abort ID --reason TEXT"); err != nil {
		return err
	}
	j, err := e.admin.AbortJob(ctx, &pb.AbortJobRequest{JobId: args[0], Reason: flagValue(e, "reason")})
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.out, j)
	}
	fmt.Fprintf(e.out, "Job %s is now %s: %s\n", j.Id, j.State, j.Reason)
	return nil
}

func modelsList(ctx context.Context, e *env, args []string) error {
	resp, err := e.admin.ListModels(ctx, &pb.ListModelsRequest{JobId: flagValue(e, "job")})
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.out, resp)
	}
	if len(resp.Models) == 0 {
		fmt.Fprintln(e.out, "No model published yet; a model version is published when a job completes.")
		return nil
	}
	tw := table(e.out)
	fmt.Fprintln(tw, "VERSION\tJOB\tROUND\tPARAMS\tCREATED\tSHA256")
	for _, m := range resp.Models {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", m.Version, m.JobId, m.Round, m.Params,
			time.Unix(m.CreatedUnix, 0).UTC().Format(time.RFC3339), m.Sha256[:16])
	}
	return tw.Flush()
}

func modelsGet(ctx context.Context, e *env, args []string) error {
	if err := need(args, 1, "a model version: concordctl models get VERSION"); err != nil {
		return err
	}
	out := flagValue(e, "out")
	if out == "" {
		out = args[0] + ".f32"
	}
	stream, err := e.admin.GetModel(ctx, &pb.GetModelRequest{Version: args[0]})
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	var info *pb.ModelVersion
	var n int64
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if m.Info != nil {
			info = m.Info
			if err := os.WriteFile(out+".layout.json", m.Layout, 0o644); err != nil {
				return err
			}
		}
		w, err := f.Write(m.Chunk.Data)
		if err != nil {
			return err
		}
		n += int64(w)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if e.json {
		return json.NewEncoder(e.out).Encode(map[string]any{"version": info.GetVersion(), "file": out, "bytes": n, "layout": out + ".layout.json"})
	}
	fmt.Fprintf(e.out, "Model %s (job %s, round %d): %d parameters written to %s, layout to %s.layout.json\n",
		info.GetVersion(), info.GetJobId(), info.GetRound(), n/4, out, out)
	return nil
}

func eventsList(ctx context.Context, e *env, args []string) error {
	resp, err := e.admin.ListEvents(ctx, &pb.ListEventsRequest{JobId: flagValue(e, "job")})
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.out, resp)
	}
	tw := table(e.out)
	fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tACTOR\tJOB\tDETAIL")
	for _, ev := range resp.Events {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, time.UnixMilli(ev.UnixMillis).UTC().Format(time.RFC3339), ev.Kind, ev.Actor, orDash(ev.JobId), ev.Detail)
	}
	return tw.Flush()
}
