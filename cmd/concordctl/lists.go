package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Every list call is paged: the coordinator returns at most its page size
// and a next_page_token; concordctl follows the tokens to the end. A token
// seen twice stops the loop rather than spinning on a broken server.
func pages(fetch func(token string) (next string, err error)) error {
	seen := map[string]bool{}
	token := ""
	for {
		next, err := fetch(token)
		if err != nil {
			return err
		}
		if next == "" || seen[next] {
			return nil
		}
		seen[next] = true
		token = next
	}
}

func listSites(ctx context.Context, admin pb.AdminClient) ([]*pb.Site, error) {
	var all []*pb.Site
	err := pages(func(token string) (string, error) {
		r, err := admin.ListSites(ctx, &pb.ListSitesRequest{PageToken: token})
		if err != nil {
			return "", err
		}
		all = append(all, r.Sites...)
		return r.NextPageToken, nil
	})
	return all, err
}

func listJobs(ctx context.Context, admin pb.AdminClient) ([]*pb.Job, error) {
	var all []*pb.Job
	err := pages(func(token string) (string, error) {
		r, err := admin.ListJobs(ctx, &pb.ListJobsRequest{PageToken: token})
		if err != nil {
			return "", err
		}
		all = append(all, r.Jobs...)
		return r.NextPageToken, nil
	})
	return all, err
}

// listModels lists the published versions, and the rejected ones too when
// rejected is set.
func listModels(ctx context.Context, admin pb.AdminClient, job string, rejected bool) ([]*pb.ModelVersion, error) {
	var all []*pb.ModelVersion
	err := pages(func(token string) (string, error) {
		r, err := admin.ListModels(ctx, &pb.ListModelsRequest{JobId: job, PageToken: token, IncludeRejected: rejected})
		if err != nil {
			return "", err
		}
		all = append(all, r.Models...)
		return r.NextPageToken, nil
	})
	return all, err
}

// listEvents returns the events after seq after, at most limit of them (0:
// all).
func listEvents(ctx context.Context, admin pb.AdminClient, job string, after int64, limit int) ([]*pb.JobEvent, error) {
	var all []*pb.JobEvent
	err := pages(func(token string) (string, error) {
		req := &pb.ListEventsRequest{JobId: job, AfterSeq: after, PageToken: token}
		if limit > 0 {
			req.PageSize = uint32(min(limit-len(all), 1<<20))
		}
		r, err := admin.ListEvents(ctx, req)
		if err != nil {
			return "", err
		}
		all = append(all, r.Events...)
		if limit > 0 && len(all) >= limit {
			all = all[:limit]
			return "", nil
		}
		return r.NextPageToken, nil
	})
	return all, err
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(unix int64) string {
	if unix <= 0 {
		return "never"
	}
	return time.Since(time.Unix(unix, 0)).Round(time.Second).String() + " ago"
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (g *globals) sitesList() *cli.Command {
	return g.remote(&cli.Command{Name: "list", Args: "[--json]",
		Synopsis: "list sites: connected or not, agent version, last seen, examples, current task"}, 0, nil,
		func(ctx context.Context, cl *client, asJSON bool, _ []string, out io.Writer) error {
			sites, err := listSites(ctx, cl.admin)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, map[string]any{"sites": protoList(sites)})
			}
			if len(sites) == 0 {
				fmt.Fprintln(out, "No site has connected yet. Issue a kit with `concordctl pki issue --site NAME` and start its agent.")
				return nil
			}
			tw := table(out)
			fmt.Fprintln(tw, "SITE\tSTATUS\tAGENT\tLAST SEEN\tEXAMPLES\tDRIFT (PSI)\tCURRENT TASK\tPROBLEM")
			for _, s := range sites {
				st := "offline"
				switch {
				case s.Revoked:
					st = "revoked"
				case s.Connected:
					st = "connected"
				}
				problem := s.DataProblem
				if s.WitnessAlarm != "" {
					// Before anything else: the audit history may have been changed.
					problem = "WITNESS ALARM " + s.WitnessAlarm
				}
				if problem == "" && s.LastFailure != nil {
					problem = s.LastFailure.Task + ": " + s.LastFailure.Reason
				}
				drift := "-"
				if d := s.Drift; d != nil {
					drift = fmt.Sprintf("%.3f", d.MaxPsi)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, st, orDash(s.Version), ago(s.LastSeenUnix), s.Examples, drift, orDash(s.CurrentTask), orDash(problem))
			}
			return tw.Flush()
		})
}

func (g *globals) events() *cli.Command {
	var job *string
	var after *int64
	var limit *int
	return g.remote(&cli.Command{Name: "events", Args: "[--job ID] [--after SEQ] [--limit N] [--json]",
		Synopsis: "list the coordinator's event log",
		Help:     "List the coordinator's event log, oldest first, every page of it.\n--after SEQ starts after an event already seen; --limit N stops after N events."}, 0,
		func(fs *flag.FlagSet) {
			job = fs.String("job", "", "only the events of job `ID`")
			after = fs.Int64("after", 0, "only events after sequence number `SEQ`")
			limit = fs.Int("limit", 0, "at most `N` events (0: all)")
		},
		func(ctx context.Context, cl *client, asJSON bool, _ []string, out io.Writer) error {
			if *limit < 0 || *after < 0 {
				return fmt.Errorf("--limit and --after must not be negative")
			}
			evs, err := listEvents(ctx, cl.admin, *job, *after, *limit)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, map[string]any{"events": protoList(evs)})
			}
			tw := table(out)
			fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tACTOR\tJOB\tDETAIL")
			for _, ev := range evs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, time.UnixMilli(ev.UnixMillis).UTC().Format(time.RFC3339), ev.Kind, ev.Actor, orDash(ev.JobId), ev.Detail)
			}
			return tw.Flush()
		})
}

func (g *globals) sitesDrift() *cli.Command {
	return g.remote(&cli.Command{Name: "drift", Args: "[--json]",
		Synopsis: "each site's last drift report: PSI per feature of arriving images against its baseline, feedback count",
		Help: "Sites compare the images arriving at them with the data they last trained or validated on and report only\n" +
			"the population stability index (PSI) per feature: below 0.1 little change, 0.1-0.25 moderate, above 0.25 large."}, 0, nil,
		func(ctx context.Context, cl *client, asJSON bool, _ []string, out io.Writer) error {
			sites, err := listSites(ctx, cl.admin)
			if err != nil {
				return err
			}
			if asJSON {
				rows := []map[string]any{}
				for _, s := range sites {
					if s.Drift != nil {
						rows = append(rows, map[string]any{"site": s.Name, "drift": protoObject(s.Drift)})
					}
				}
				return writeJSON(out, map[string]any{"drift": rows})
			}
			tw := table(out)
			fmt.Fprintln(tw, "SITE\tREPORTED\tBASELINE JOB\tIMAGES (BASELINE)\tMAX PSI\tPSI BY FEATURE\tFEEDBACK")
			n := 0
			for _, s := range sites {
				d := s.Drift
				if d == nil {
					continue
				}
				n++
				var parts []string
				for _, k := range sortedKeys(d.Psi) {
					parts = append(parts, fmt.Sprintf("%s=%.3f", k, d.Psi[k]))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d (%d)\t%.3f\t%s\t%d\n", s.Name, ago(d.UnixMillis/1000), orDash(d.BaselineJob), d.Examples,
					d.BaselineExamples, d.MaxPsi, strings.Join(parts, " "), d.Feedback)
			}
			if n == 0 {
				fmt.Fprintln(out, "No site has reported drift yet: a site reports once it has trained or validated and sees new images in its drift folder (agent.yaml drift.dir).")
				return nil
			}
			return tw.Flush()
		})
}
