package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/evaluation"
	siteagent "github.com/concord-fl/concord/site-agent"
)

const driftHelp = `Show the drift baseline (the data of the job this site last trained on: its size, the
deciles of its standardised intensities, its header categories) and the last drift report the
agent sent: the population stability index (PSI) of the arriving images per feature, and the
clinicians' corrections collected since the baseline. PSI below 0.1 is no meaningful shift,
0.1 to 0.25 moderate, above 0.25 significant. The agent computes a report every drift.interval
from the files in drift.dir. This reads the state folder without changing it; stop a running
agent first.`

// minDriftInterval keeps a misconfigured interval from running the
// pipeline over thousands of files back to back.
const minDriftInterval = time.Minute

// duration is a YAML duration ("90m", "1h") whose error says what to write.
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 30m or 1h)", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

// driftConfig converts agent.yaml's drift and feedback sections.
func (fc fileConfig) driftConfig(abs func(string) string) (siteagent.DriftConfig, siteagent.FeedbackConfig, error) {
	d := siteagent.DriftConfig{Dir: abs(fc.Drift.Dir), Interval: time.Duration(fc.Drift.Interval), MinExamples: fc.Drift.MinExamples}
	f := siteagent.FeedbackConfig{Dir: abs(fc.Feedback.Dir)}
	switch {
	case d.Interval < 0 || d.Interval > 0 && d.Interval < minDriftInterval:
		return d, f, fmt.Errorf("drift.interval %v: give %v or more (default 1h)", d.Interval, minDriftInterval)
	case d.MinExamples < 0:
		return d, f, fmt.Errorf("drift.min_examples %d: give a positive number of images (default 30)", d.MinExamples)
	case d.Dir == "" && (d.Interval != 0 || d.MinExamples != 0):
		return d, f, fmt.Errorf("drift.interval and drift.min_examples are set but drift.dir is not: name the folder the arriving images are written to")
	}
	return d, f, nil
}

// driftJSON is what `site-agent drift --json` prints; the report keeps the
// protocol's field names.
type driftJSON struct {
	Baseline *siteagent.Baseline `json:"baseline"`
	Last     json.RawMessage     `json:"last"`
}

func driftCmd(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	dir, asJSON, code, ok := stateDirArgs(c, args, "print {\"baseline\": ..., \"last\": ...} as JSON", stdout, stderr)
	if !ok {
		return code
	}
	st, err := siteagent.ReadDrift(dir, 2*time.Second)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if asJSON {
		out := driftJSON{Baseline: st.Baseline, Last: json.RawMessage("null")}
		if st.Last != nil {
			if out.Last, err = (protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}).Marshal(st.Last); err != nil {
				return c.Fail(stderr, err)
			}
		}
		if err := json.NewEncoder(stdout).Encode(out); err != nil {
			return c.Fail(stderr, err)
		}
		return 0
	}
	writeDrift(stdout, st)
	return 0
}

// writeDrift prints the baseline and the last report for a person.
func writeDrift(stdout io.Writer, st siteagent.DriftState) {
	b := st.Baseline
	if b == nil {
		fmt.Fprintln(stdout, "no drift baseline yet: one is recorded when the site next trains for a job")
		return
	}
	fmt.Fprintf(stdout, "baseline: job %s, %d examples, recorded %s\n  pipeline %.16s… %dx%dx%d normalise %s\n",
		b.Job, b.Examples, b.Recorded.UTC().Format(time.DateTime), b.PipelineHash, b.Pipeline.Channels, b.Pipeline.Height, b.Pipeline.Width, b.Pipeline.Normalise)
	fmt.Fprintf(stdout, "  intensity: %d bins over %v sampled pixels\n", len(b.Intensity.Counts), b.Intensity.N())
	for _, f := range namesOf(b.Categories) {
		fmt.Fprintf(stdout, "  %s: %s\n", f, formatTable(b.Categories[f]))
	}
	r := st.Last
	if r == nil {
		fmt.Fprintln(stdout, "\nno drift report yet: set drift.dir in agent.yaml; a report needs drift.min_examples readable images")
		return
	}
	fmt.Fprintf(stdout, "\nlast report: %s, %d arriving images against baseline job %s (%d examples), %d corrections since the baseline\n",
		time.UnixMilli(r.UnixMillis).UTC().Format(time.DateTime), r.Examples, r.BaselineJob, r.BaselineExamples, r.Feedback)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tPSI\tREADING")
	for _, f := range namesOf(r.Psi) {
		fmt.Fprintf(tw, "%s\t%.4f\t%s\n", f, r.Psi[f], reading(r.Psi[f]))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "max PSI %.4f: %s\n", r.MaxPsi, reading(r.MaxPsi))
}

// reading is the conventional verdict of a PSI.
func reading(psi float64) string {
	switch {
	case psi > evaluation.PSISignificant:
		return "significant shift: look at what changed (scanner, protocol, patients); retraining may be due"
	case psi > evaluation.PSIModerate:
		return "moderate shift"
	}
	return "stable"
}

func formatTable(t evaluation.Frequencies) string {
	s := ""
	for i, k := range namesOf(t) {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %g", k, t[k])
	}
	return s
}

// namesOf is m's keys in alphabetical order.
func namesOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
