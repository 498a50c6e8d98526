package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/imaging/pacs"
	"github.com/concord-fl/concord/internal/bytesize"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// pacsFileConfig is agent.yaml's data.pacs section: the site's images
// come from its PACS instead of data.dir.
type pacsFileConfig struct {
	URL     string          `yaml:"url"`
	Queries []pacsFileQuery `yaml:"queries"`
	// Labels is a CSV with a label column and a study_instance_uid or
	// sop_instance_uid column.
	Labels string `yaml:"labels"`
	// SEGLabels, instead of Labels: labels from the DICOM SEG objects in
	// the same studies.
	SEGLabels bool `yaml:"seg_labels"`
	// SRLabels, instead of Labels: each study's class from the coded
	// finding in its structured reports.
	SRLabels          *srLabelsFileConfig `yaml:"sr_labels"`
	RequestsPerSecond float64             `yaml:"requests_per_second"`
	Concurrency       int                 `yaml:"concurrency"`
	Timeout           duration            `yaml:"timeout"`
	CacheDir          string              `yaml:"cache_dir"`
	CacheSize         bytesize.Size       `yaml:"cache_size"`
	// Refresh is how long the queries' answer stands between data loads.
	Refresh duration `yaml:"refresh"`
}

// srLabelsFileConfig is data.pacs.sr_labels.
type srLabelsFileConfig struct {
	// Finding is the concept name of the report's CODE item that holds the
	// finding, SCHEME:VALUE (default DCM:121071, "Finding").
	Finding string `yaml:"finding"`
	// Classes maps each coded value, SCHEME:VALUE, to one of data.classes.
	Classes map[string]string `yaml:"classes"`
}

type pacsFileQuery struct {
	Modality          string `yaml:"modality"`
	BodyPart          string `yaml:"body_part"`
	SeriesDescription string `yaml:"series_description"`
	From              string `yaml:"from"` // study dates, 2006-01-02 or 20060102
	To                string `yaml:"to"`
}

// query converts one query; name says where it is in agent.yaml.
func (q pacsFileQuery) query(name string) (pacs.Query, error) {
	out := pacs.Query{Modality: q.Modality, BodyPart: q.BodyPart, SeriesDescription: q.SeriesDescription}
	var err error
	if out.From, err = parseDay(q.From); err != nil {
		return out, fmt.Errorf("%s.from: %w", name, err)
	}
	if out.To, err = parseDay(q.To); err != nil {
		return out, fmt.Errorf("%s.to: %w", name, err)
	}
	if !out.From.IsZero() && !out.To.IsZero() && out.To.Before(out.From) {
		return out, fmt.Errorf("%s: to %s is before from %s", name, q.To, q.From)
	}
	return out, nil
}

func parseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02", "20060102"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (write 2024-01-31)", s)
}

func (pc *pacsFileConfig) options() pacs.Options {
	return pacs.Options{RequestsPerSecond: pc.RequestsPerSecond, Concurrency: pc.Concurrency, Timeout: time.Duration(pc.Timeout)}
}

// runtime converts data.pacs into the agent's PACSConfig.
func (pc *pacsFileConfig) runtime(abs func(string) string, stateDir string, classes []string, allowBurnedIn bool, logger *slog.Logger) (siteagent.PACSConfig, error) {
	cfg := siteagent.PACSConfig{URL: pc.URL, Options: pc.options(), Labels: abs(pc.Labels), SEGLabels: pc.SEGLabels, Classes: classes,
		StateDir: stateDir, CacheDir: abs(pc.CacheDir), CacheBytes: int64(pc.CacheSize), Workers: pc.Concurrency, Refresh: time.Duration(pc.Refresh),
		AllowBurnedIn: allowBurnedIn, Logger: logger}
	if pc.SRLabels != nil {
		sr := siteagent.SRLabelConfig{Finding: pc.SRLabels.Finding, Classes: pc.SRLabels.Classes}
		if sr.Finding == "" {
			sr.Finding = "DCM:121071"
		}
		cfg.SRLabels = &sr
	}
	switch {
	case pc.URL == "":
		return cfg, fmt.Errorf("data.pacs.url: give the PACS, e.g. https://pacs.example.org/dicom-web")
	case pc.Labels == "" && !pc.SEGLabels && pc.SRLabels == nil:
		return cfg, fmt.Errorf("data.pacs.labels: give the labels CSV (a label column and a study_instance_uid or sop_instance_uid column), or set data.pacs.seg_labels or data.pacs.sr_labels")
	case pc.CacheSize <= 0:
		return cfg, fmt.Errorf("data.pacs.cache_size: give the disk the PACS cache may use, e.g. 20GiB")
	case pc.RequestsPerSecond < 0 || pc.Concurrency < 0 || pc.Timeout < 0 || pc.Refresh < 0:
		return cfg, fmt.Errorf("data.pacs: requests_per_second, concurrency, timeout and refresh cannot be negative")
	}
	for i, q := range pc.Queries {
		pq, err := q.query(fmt.Sprintf("data.pacs.queries[%d]", i))
		if err != nil {
			return cfg, err
		}
		cfg.Queries = append(cfg.Queries, pq)
	}
	return cfg, nil
}

// openPACS makes the data source of a site whose images are in its PACS.
func openPACS(fc fileConfig, pc *pacsFileConfig, abs func(string) string, stateDir, feedbackDir string, logger *slog.Logger) (*siteagent.PACSData, error) {
	if fc.Data.Dir != "" || feedbackDir != "" {
		return nil, fmt.Errorf("data.pacs and data.dir (or feedback.dir) are both set: the site's images come from one of them")
	}
	rc, err := pc.runtime(abs, stateDir, fc.Data.Classes, fc.Data.AllowBurnedIn, logger)
	if err != nil {
		return nil, err
	}
	p, err := siteagent.OpenPACS(rc)
	if err != nil {
		return nil, fmt.Errorf("data.pacs: %w", err)
	}
	return p, nil
}

// pacsScanArgs are scan's flags for a PACS.
type pacsScanArgs struct {
	url, config, bodyPart, description, from, to string
	modalities                                   multiFlag
	rps                                          float64
	concurrency                                  int
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func pacsScanFlags(fs *flag.FlagSet) *pacsScanArgs {
	a := &pacsScanArgs{}
	fs.StringVar(&a.url, "pacs", "", "summarise what a query of this PACS `url` would bring (http(s)://: DICOMweb) instead of a folder")
	fs.StringVar(&a.config, "config", "", "scan the PACS source (data.pacs) of this agent.yaml `file`: its url unless --pacs, its queries unless query flags, its labels and data.classes")
	fs.Var(&a.modalities, "modality", "with --pacs: series of this `modality` (repeat for several)")
	fs.StringVar(&a.bodyPart, "body-part", "", "with --pacs: Body Part Examined, e.g. CHEST")
	fs.StringVar(&a.description, "description", "", "with --pacs: Series Description, * and ? as wildcards")
	fs.StringVar(&a.from, "from", "", "with --pacs: studies from this `date` (2024-01-31)")
	fs.StringVar(&a.to, "to", "", "with --pacs: studies up to this `date`")
	fs.Float64Var(&a.rps, "rps", 0, "with --pacs: at most this many requests per second (0: unpaced)")
	fs.IntVar(&a.concurrency, "concurrency", 2, "with --pacs: requests in flight at once")
	return a
}

var pacsFlagNames = map[string]bool{"pacs": true, "config": true, "modality": true, "body-part": true, "description": true,
	"from": true, "to": true, "rps": true, "concurrency": true, "json": true, "quiet": true}

// scanPACS is "site-agent scan --pacs URL [--modality M ...] ..." or
// "site-agent scan --config agent.yaml [--pacs URL] [--modality M ...] ...".
func scanPACS(c *cli.Command, fs *flag.FlagSet, a *pacsScanArgs, pos []string, asJSON, quiet bool, stdout, stderr io.Writer) int {
	if len(pos) != 0 {
		return c.Usagef(stderr, "give a folder or --pacs URL, not both")
	}
	var bad []string
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		if !pacsFlagNames[f.Name] {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return c.Usagef(stderr, "%s apply to a folder scan, not to --pacs", strings.Join(bad, ", "))
	}
	cfg := siteagent.PACSConfig{URL: a.url, Options: pacs.Options{RequestsPerSecond: a.rps, Concurrency: a.concurrency}}
	if a.config != "" {
		var err error
		if cfg, err = scanConfig(a.config); err != nil {
			return c.Fail(stderr, err)
		}
		if a.url != "" {
			cfg.URL = a.url
		}
		if set["rps"] {
			cfg.Options.RequestsPerSecond = a.rps
		}
		if set["concurrency"] || cfg.Options.Concurrency == 0 {
			cfg.Options.Concurrency = a.concurrency
		}
	}
	if a.config != "" && !set["modality"] && !set["body-part"] && !set["description"] && !set["from"] && !set["to"] {
		return runPACSScan(c, cfg, asJSON, quiet, stdout, stderr)
	}
	base := pacsFileQuery{BodyPart: a.bodyPart, SeriesDescription: a.description, From: a.from, To: a.to}
	var queries []pacs.Query
	for _, m := range append([]string{}, a.modalities...) {
		base.Modality = m
		q, err := base.query("--modality " + m)
		if err != nil {
			return c.Fail(stderr, err)
		}
		queries = append(queries, q)
	}
	if len(queries) == 0 {
		q, err := base.query("query")
		if err != nil {
			return c.Fail(stderr, err)
		}
		queries = []pacs.Query{q}
	}
	cfg.Queries = queries
	return runPACSScan(c, cfg, asJSON, quiet, stdout, stderr)
}

// scanConfig is the PACS source of agent.yaml at path, checked as the agent
// checks it.
func scanConfig(path string) (siteagent.PACSConfig, error) {
	fc, abs, err := readConfig(path)
	if err != nil {
		return siteagent.PACSConfig{}, err
	}
	if fc.Data.PACS == nil {
		return siteagent.PACSConfig{}, fmt.Errorf("%s has no data.pacs section: scan its folder (site-agent scan DIR), or give --pacs URL without --config", path)
	}
	return fc.Data.PACS.runtime(abs, "", fc.Data.Classes, fc.Data.AllowBurnedIn, nil)
}

func runPACSScan(c *cli.Command, cfg siteagent.PACSConfig, asJSON, quiet bool, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var progress func(done, found int)
	if !quiet {
		progress = func(done, found int) {
			fmt.Fprintf(stderr, "\rasking the PACS: %d of %d series listed", done, found)
			if done == found {
				fmt.Fprintln(stderr)
			}
		}
	}
	sum, err := siteagent.ScanPACS(ctx, cfg, progress)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(sum); err != nil {
			return 1
		}
		return 0
	}
	printPACSSummary(stdout, sum)
	return 0
}

func printPACSSummary(w io.Writer, scan siteagent.PACSScan) {
	s := scan.Summary
	fmt.Fprintf(w, "studies    %d\nseries     %d\ninstances  %d\n", s.Studies, s.Series, s.Instances)
	if s.Unestimated > 0 {
		fmt.Fprintf(w, "estimated  %s of pixel data uncompressed (%d instances without geometry not counted)\n", bytesize.Format(s.EstimatedBytes), s.Unestimated)
	} else {
		fmt.Fprintf(w, "estimated  %s of pixel data uncompressed\n", bytesize.Format(s.EstimatedBytes))
	}
	fmt.Fprintln(w, "modalities")
	for _, m := range sortedKeys(s.Modalities) {
		fmt.Fprintf(w, "  %-40s %d\n", m, s.Modalities[m])
	}
	fmt.Fprintln(w, "body parts")
	for _, m := range sortedKeys(s.BodyParts) {
		fmt.Fprintf(w, "  %-40s %d\n", m, s.BodyParts[m])
	}
	fmt.Fprintln(w, "transfer syntaxes")
	for _, t := range sortedKeys(s.TransferSyntaxes) {
		fmt.Fprintf(w, "  %-40s %d\n", imaging.TransferSyntaxName(t), s.TransferSyntaxes[t])
	}
	if s.UnknownTransferSyntax > 0 {
		fmt.Fprintf(w, "  %-40s %d\n", "not given by the PACS", s.UnknownTransferSyntax)
	}
	fmt.Fprintf(w, "images     %d (instances a data load would decode)\n", scan.Images)
	if len(scan.Skipped) > 0 {
		fmt.Fprintln(w, "skipped before decoding: instances, studies")
		printCounts(w, scan.Skipped)
	}
	ls := scan.Labels
	if ls == nil {
		fmt.Fprintln(w, "labels     not checked (--config agent.yaml checks data.pacs's label source)")
		return
	}
	switch ls.Source {
	case "csv":
		fmt.Fprintln(w, "labels     from the labels CSV (data.pacs.labels): images, studies")
	case "seg":
		fmt.Fprintf(w, "labels     from %d segmentations in %d studies (data.pacs.seg_labels; %s retrieved): images, studies\n", ls.Read.Instances, ls.Read.Studies, bytesize.Format(ls.Bytes))
	case "sr":
		fmt.Fprintf(w, "labels     from %d structured reports in %d studies (data.pacs.sr_labels; %s retrieved): images, studies\n", ls.Read.Instances, ls.Read.Studies, bytesize.Format(ls.Bytes))
	}
	for _, cl := range ls.Classes {
		fmt.Fprintf(w, "  %-40s %d, %d\n", "class "+cl.Class, cl.Instances, cl.Studies)
	}
	unl := 0
	for _, n := range ls.Unlabelled {
		unl += n.Instances
	}
	fmt.Fprintf(w, "unlabelled %d: images, studies\n", unl)
	printCounts(w, ls.Unlabelled)
	if len(ls.Broken) > 0 {
		fmt.Fprintln(w, "label objects that could not be read")
		for _, r := range sortedKeys(ls.Broken) {
			fmt.Fprintf(w, "  %-40s %d\n", r, ls.Broken[r])
		}
	}
}

// printCounts prints instances and studies by reason, most instances first.
func printCounts(w io.Writer, m map[string]siteagent.Count) {
	n := make(map[string]int, len(m))
	for k, c := range m {
		n[k] = c.Instances
	}
	for _, k := range sortedKeys(n) {
		fmt.Fprintf(w, "  %-40s %d, %d\n", k, m[k].Instances, m[k].Studies)
	}
}
