package sim

import (
	"context"
	"fmt"
	"io"
	"time"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TuningSummary is a tuned job's search: each trial with the validation
// sites' score, and what the final job was given.
type TuningSummary struct {
	Group  string        `json:"group"`
	Trials []TuningTrial `json:"trials"`
	Chosen string        `json:"chosen"`
	// FinalJob is the job trained with the chosen settings, which its
	// spec carries.
	FinalJob    string  `json:"final_job"`
	ServerLR    float64 `json:"server_lr"`
	LocalEpochs uint32  `json:"local_epochs"`
	Seconds     float64 `json:"seconds"` // from submission to the final job's start
}

// TuningTrial is one trial job of the search.
type TuningTrial struct {
	JobID     string  `json:"job_id"`
	Note      string  `json:"note"`
	State     string  `json:"state"`
	Rounds    int     `json:"rounds"`
	Score     float64 `json:"validation_score"`    // mean over the validation sites of the last round's AUC (-1: none)
	Gate      string  `json:"gate"`                // "evaluated": scored, nothing published
	Published string  `json:"published,omitempty"` // a model version (a trial publishes none)
}

func (c Config) tunes() bool { return len(c.TuneServerLR) > 0 || len(c.TuneLocalEpochs) > 0 }

// awaitTuning follows a tuning group's trials until the coordinator submits
// its final job, and returns that job.
func awaitTuning(ctx context.Context, fed *Federation, group string, progress io.Writer) (*pb.Job, *TuningSummary, error) {
	start := time.Now()
	seen := map[string]bool{}
	ts := &TuningSummary{Group: group}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var final *pb.Job
		var ended bool
		token := ""
		for {
			resp, err := fed.Admin.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 500, PageToken: token})
			if err != nil {
				return nil, nil, fmt.Errorf("list jobs: %w", err)
			}
			for _, j := range resp.Jobs {
				if j.TuneGroup != group {
					continue
				}
				if j.TuneFinal {
					final = j
					continue
				}
				if j.Gate != nil && j.Gate.State != "pending" || j.State == "aborted" || j.State == "failed" {
					if !seen[j.Id] {
						seen[j.Id] = true
						t := TuningTrial{JobID: j.Id, Note: j.TuneNote, State: j.State, Rounds: int(j.Round), Score: trialScore(j),
							Gate: j.Gate.GetState(), Published: j.ModelVersion}
						ts.Trials = append(ts.Trials, t)
						fmt.Fprintf(progress, "tuning %s: job %s, %s: %s, validation AUC %.4f\n", group, j.Id, j.TuneNote, j.State, t.Score)
					}
				}
				if j.TuneEnded {
					ended = true
				}
			}
			if token = resp.NextPageToken; token == "" {
				break
			}
		}
		if final != nil {
			ts.Chosen, ts.Seconds, ts.FinalJob = final.TuneNote, time.Since(start).Seconds(), final.Id
			ts.ServerLR, ts.LocalEpochs = final.Spec.GetAggregation().GetServerLr(), final.Spec.GetTraining().GetLocalEpochs()
			fmt.Fprintf(progress, "tuning %s: final job %s, %s\n", group, final.Id, final.TuneNote)
			return final, ts, nil
		}
		if ended {
			return nil, nil, fmt.Errorf("tuning %s ended without a final job: no trial was scored by a validation site", group)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("tuning %s: %w", group, ctx.Err())
		case <-tick.C:
		}
	}
}

// trialScore is the examples-weighted mean of the last round's validation
// AUC, as the coordinator ranks trials; -1 when no site scored it.
func trialScore(j *pb.Job) float64 {
	if len(j.Rounds) == 0 {
		return -1
	}
	var sum, n float64
	for _, v := range j.Rounds[len(j.Rounds)-1].Validation {
		if auc, ok := v.Metrics["auc"]; ok && v.ModelRole == "global" && v.Examples > 0 {
			sum += auc * float64(v.Examples)
			n += float64(v.Examples)
		}
	}
	if n == 0 {
		return -1
	}
	return sum / n
}
