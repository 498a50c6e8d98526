package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func (g *globals) jobsSubmit() *cli.Command {
	return g.remote(&cli.Command{Name: "submit", Args: "FILE [--json]", Synopsis: "submit a job described in a YAML file"}, 1, nil,
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			// ParseFile also reads a custom model's module next to the job file.
			spec, err := jobspec.ParseFile(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			job, err := cl.admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, protoObject(job))
			}
			if job.FoldGroup != "" {
				fmt.Fprintf(out, "Leave-one-site-out %s submitted (%s): one fold per site of %v, each trained on the others and scored by the site held out; the first is job %s.\nFollow them with: concordctl jobs folds %s\n",
					job.FoldGroup, spec.Name, spec.Sites, job.Id, job.FoldGroup)
				return nil
			}
			if job.TuneGroup != "" {
				fmt.Fprintf(out, "Tuning %s submitted (%s): %d candidates of %d rounds each, scored by %v; the best train %d rounds as the job itself.\n"+
					"The first trial is job %s; `concordctl jobs list` shows the trials and, when the search ends, the final job.\n",
					job.TuneGroup, spec.Name, len(jobspec.TuneCandidates(spec)), spec.Tuning.Rounds, spec.ValidationSites, spec.Rounds, job.Id)
				return nil
			}
			fmt.Fprintf(out, "Job %s submitted (%s): %d rounds, min %d sites, %s, secure aggregation %s.\nFollow it with: concordctl jobs watch %s\n",
				job.Id, spec.Name, spec.Rounds, spec.MinSites, spec.Aggregation.GetStrategy(), spec.Privacy.GetSecureAggregation(), job.Id)
			if m := spec.Model; m.GetArch() == jobspec.ArchCustom {
				fmt.Fprintf(out, "It ships custom model code %s (sha256 %s): each site trains it only after its hospital reviewed the file and ran\n"+
					"  site-agent models approve-code %s\n", m.CodeFile, m.CodeSha256, m.CodeSha256)
			}
			return nil
		})
}

func (g *globals) jobsList() *cli.Command {
	return g.remote(&cli.Command{Name: "list", Args: "[--json]", Synopsis: "list jobs"}, 0, nil,
		func(ctx context.Context, cl *client, asJSON bool, _ []string, out io.Writer) error {
			jobs, err := listJobs(ctx, cl.admin)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, map[string]any{"jobs": protoList(jobs)})
			}
			tw := table(out)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tROUND\tSUBMITTED BY\tMODEL")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.Id, j.Spec.GetName(), j.State, j.Round, j.Spec.GetRounds(), j.SubmittedBy, orDash(j.ModelVersion))
			}
			return tw.Flush()
		})
}

func (g *globals) jobsStatus() *cli.Command {
	return g.remote(&cli.Command{Name: "status", Args: "ID [--json]", Synopsis: "show a job and its rounds"}, 1, nil,
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			j, err := cl.admin.GetJob(ctx, &pb.GetJobRequest{JobId: args[0]})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, protoObject(j))
			}
			printJob(out, j)
			return nil
		})
}

func printJob(w io.Writer, j *pb.Job) {
	fmt.Fprintf(w, "Job %s  %s\n  state: %s\n  round: %d of %d\n  submitted by %s at %s\n",
		j.Id, j.Spec.GetName(), j.State, j.Round, j.Spec.GetRounds(), j.SubmittedBy, time.Unix(j.CreatedUnix, 0).UTC().Format(time.RFC3339))
	if j.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", j.Reason)
	}
	if j.TuneGroup != "" {
		fmt.Fprintf(w, "  tuning %s: %s\n", j.TuneGroup, j.TuneNote)
	}
	if j.ModelVersion != "" {
		fmt.Fprintf(w, "  model: %s (concordctl models show %s)\n", j.ModelVersion, j.ModelVersion)
	}
	if g := j.Gate; g != nil {
		fmt.Fprintf(w, "  gate: %s", g.State)
		if g.Version != "" {
			fmt.Fprintf(w, " (%s)", g.Version)
		}
		fmt.Fprintln(w)
		for _, r := range g.Reasons {
			fmt.Fprintf(w, "    - %s\n", r)
		}
	}
	for _, wf := range j.WaitingFor {
		fmt.Fprintf(w, "  waiting for %s: %s\n", wf.Site, wf.Reason)
	}
	for _, f := range j.Failures {
		fmt.Fprintf(w, "  failure at %s, round %d, %s: %s\n", f.Site, f.Round, f.Task, f.Reason)
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
		printValidation(w, j)
	}
}

// printValidation shows each validation site's signed figures per round,
// then the cross-site matrix of the final round.
func printValidation(w io.Writer, j *pb.Job) {
	var any bool
	for _, r := range j.Rounds {
		any = any || len(r.Validation) > 0
	}
	if !any {
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "\n  ROUND\tVALIDATION SITE\tEXAMPLES\tAUC [95% CI]\tSENSITIVITY\tSPECIFICITY\tF1")
	for _, r := range j.Rounds {
		for _, v := range r.Validation {
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Round, v.Site, v.Examples,
				interval(v, "auc"), interval(v, "sensitivity"), interval(v, "specificity"), interval(v, "f1"))
		}
	}
	tw.Flush()
	if m := j.CrossSite; m != nil && len(m.Cells) > 0 {
		fmt.Fprintln(w, "\n  cross-site AUC (rows: model, columns: validation site)")
		tw := table(w)
		fmt.Fprintf(tw, "  MODEL\t%s\n", strings.Join(m.Sites, "\t"))
		for _, model := range m.Models {
			row := []string{model}
			for _, site := range m.Sites {
				cell := "-"
				for _, c := range m.Cells {
					if c.ModelRole == model && c.Site == site {
						cell = interval(c, "auc")
					}
				}
				row = append(row, cell)
			}
			fmt.Fprintf(tw, "  %s\n", strings.Join(row, "\t"))
		}
		tw.Flush()
		if m.Note != "" {
			fmt.Fprintf(w, "  (%s)\n", m.Note)
		}
	}
	printPooled(w, j.Pooled)
}

// printPooled shows the subgroup figures pooled over validation sites.
func printPooled(w io.Writer, p *pb.PooledSubgroups) {
	if p == nil {
		return
	}
	if p.State != "decrypted" {
		fmt.Fprintf(w, "\n  pooled subgroups: %s (%s)\n", p.State, p.Reason)
		return
	}
	fmt.Fprintf(w, "\n  pooled subgroups over %s (only the sum was decrypted)\n", strings.Join(p.Sites, ", "))
	tw := table(w)
	fmt.Fprintln(tw, "  FIELD\tVALUE\tEXAMPLES\tTP\tFP\tTN\tFN\tSENSITIVITY [95% CI]\tSPECIFICITY [95% CI]")
	for _, c := range p.Cells {
		value := c.Value
		if value == "" {
			value = "unknown"
		}
		if c.Suppressed {
			fmt.Fprintf(tw, "  %s\t%s\tsuppressed (below validation.min_subgroup_count)\n", c.Field, value)
			continue
		}
		est := func(k string) string {
			x, ok := c.Metrics[k]
			if !ok {
				return "-"
			}
			return fmt.Sprintf("%.3f [%.3f, %.3f]", x, c.Lower[k], c.Upper[k])
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", c.Field, value, c.Examples,
			c.Confusion["tp"], c.Confusion["fp"], c.Confusion["tn"], c.Confusion["fn"], est("sensitivity"), est("specificity"))
	}
	tw.Flush()
	if p.Note != "" {
		fmt.Fprintf(w, "  (%s)\n", p.Note)
	}
}

func interval(v *pb.SiteValidation, metric string) string {
	x, ok := v.Metrics[metric]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", x, v.Lower[metric], v.Upper[metric])
}

func (g *globals) jobsWatch() *cli.Command {
	return g.remote(&cli.Command{Name: "watch", Args: "ID [--json]", Synopsis: "follow a job live until it ends",
		Help: "Follow a job live until it ends. With --json, one JSON object per event and line."}, 1, nil,
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			stream, err := cl.admin.WatchJob(ctx, &pb.WatchJobRequest{JobId: args[0]})
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
				if asJSON {
					b, err := json.Marshal(protoObject(ev))
					if err != nil {
						return err
					}
					fmt.Fprintln(out, string(b))
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
				fmt.Fprintf(out, "%s%s%s %s\n", ts, where, who, ev.Detail)
			}
			if last != nil && !asJSON {
				fmt.Fprintln(out)
				printJob(out, last)
			}
			if last != nil && last.State == "aborted" {
				return fmt.Errorf("job %s aborted: %s", last.Id, last.Reason)
			}
			return nil
		})
}

func (g *globals) jobsAbort() *cli.Command {
	var reason *string
	return g.remote(&cli.Command{Name: "abort", Args: "ID [--reason TEXT] [--json]",
		Synopsis: "abort a running job (--reason says why; recorded in the audit trail)"}, 1,
		func(fs *flag.FlagSet) { reason = fs.String("reason", "", "why, for the audit trail") },
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			j, err := cl.admin.AbortJob(ctx, &pb.AbortJobRequest{JobId: args[0], Reason: *reason})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, protoObject(j))
			}
			fmt.Fprintf(out, "Job %s is now %s: %s\n", j.Id, j.State, j.Reason)
			return nil
		})
}
func (g *globals) jobsApprove() *cli.Command {
	return g.remote(&cli.Command{Name: "approve", Args: "ID [--json]",
		Synopsis: "start a job that waits for approval (a retraining job whose spec requires it; recorded in the audit trail)"}, 1, nil,
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			j, err := cl.admin.ApproveJob(ctx, &pb.ApproveJobRequest{JobId: args[0]})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, protoObject(j))
			}
			fmt.Fprintf(out, "Job %s approved and started. Follow it with: concordctl jobs watch %s\n", j.Id, j.Id)
			return nil
		})
}
