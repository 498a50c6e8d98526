package main

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/concord-fl/concord/cmd/internal/cli"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// foldMetrics are the metrics `jobs folds` summarises.
var foldMetrics = []string{"auc", "sensitivity", "specificity", "f1"}

// heldOutResult is what a fold's held-out site measured on the final
// model, from its signed receipt.
func heldOutResult(j *pb.Job) *pb.SiteValidation {
	if len(j.Rounds) == 0 {
		return nil
	}
	for _, v := range j.Rounds[len(j.Rounds)-1].Validation {
		if v.Site == j.HeldOut && v.ModelRole == "global" {
			return v
		}
	}
	return nil
}

// meanSD is the mean and sample standard deviation (0 for one value).
func meanSD(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}

func (g *globals) jobsFolds() *cli.Command {
	return g.remote(&cli.Command{Name: "folds", Args: "GROUP [--json]",
		Synopsis: "a leave-one-site-out job: each fold's result at its held-out site, and the mean and spread over folds"}, 1, nil,
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			jobs, err := listJobs(ctx, cl.admin)
			if err != nil {
				return err
			}
			var folds []*pb.Job
			for _, j := range jobs {
				if j.FoldGroup == args[0] {
					folds = append(folds, j)
				}
			}
			if len(folds) == 0 {
				return fmt.Errorf("no leave-one-site-out group %s: `concordctl jobs list` shows the jobs", args[0])
			}
			values := map[string][]float64{}
			var rows []map[string]any
			for _, j := range folds {
				row := map[string]any{"job_id": j.Id, "held_out": j.HeldOut, "state": j.State}
				if v := heldOutResult(j); v != nil {
					row["examples"], row["metrics"], row["lower"], row["upper"] = v.Examples, v.Metrics, v.Lower, v.Upper
					for _, m := range foldMetrics {
						if x, ok := v.Metrics[m]; ok {
							values[m] = append(values[m], x)
						}
					}
				}
				rows = append(rows, row)
			}
			mean, sd := map[string]float64{}, map[string]float64{}
			for m, xs := range values {
				mean[m], sd[m] = meanSD(xs)
			}
			if asJSON {
				return writeJSON(out, map[string]any{"group": args[0], "folds": rows, "mean": mean, "std": sd, "scored": len(values["auc"])})
			}
			tw := table(out)
			fmt.Fprintln(tw, "JOB\tHELD OUT\tSTATE\tEXAMPLES\tAUC [95% CI]\tSENSITIVITY\tSPECIFICITY\tF1")
			for _, j := range folds {
				v := heldOutResult(j)
				if v == nil {
					fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\n", j.Id, j.HeldOut, j.State)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", j.Id, j.HeldOut, j.State, v.Examples,
					interval(v, "auc"), interval(v, "sensitivity"), interval(v, "specificity"), interval(v, "f1"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			n := len(values["auc"])
			fmt.Fprintf(out, "\n%d of %d folds scored by their held-out site", n, len(folds))
			if n > 0 {
				fmt.Fprintf(out, ": mean (SD) over folds")
				for _, m := range foldMetrics {
					if _, ok := mean[m]; ok {
						fmt.Fprintf(out, "  %s %.3f (%.3f)", m, mean[m], sd[m])
					}
				}
			}
			fmt.Fprintln(out)
			return nil
		})
}
