package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/privacy/he"
	"github.com/concord-fl/concord/privacy/he/party"
)

var (
	defaultParams = []int{100_000, 1_000_000, 10_000_000}
	defaultSites  = []int{3, 10, 50}
)

// skipDefault says why a configuration of the default table is left out.
func skipDefault(params, sites int) string {
	if params >= 10_000_000 && sites >= 50 {
		return "10M x 50 takes several minutes on 2 shared cores (50 encryptions and 34 share sets of 10M values); run it alone with --params 10M --sites 50"
	}
	return ""
}

// heBench is `concord-bench he [--params P] [--sites N] [--threshold T] [--set NAME] [--json]`.
func heBench(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	paramsFlag := fs.String("params", "", "values per update: an integer or 100k, 1M, 10M (default: the table over 100k, 1M, 10M)")
	sitesFlag := fs.Int("sites", 0, "number of sites (default: the table over 3, 10, 50)")
	thrFlag := fs.Int("threshold", 0, "decryption threshold t (default: ceil(2N/3))")
	setFlag := fs.String("set", he.Default, "parameter set")
	jsonFlag := fs.Bool("json", false, "end with one JSON line of the figures")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	ps, err := he.Lookup(*setFlag)
	if err != nil {
		fmt.Fprintf(stderr, "concord-bench he: %v\n", err)
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	paramsList, sitesList := defaultParams, defaultSites
	single := set["params"] || set["sites"]
	if set["params"] {
		p, err := parseCount(*paramsFlag)
		if err != nil {
			fmt.Fprintf(stderr, "concord-bench he: --params: %v\n", err)
			return 2
		}
		paramsList = []int{p}
	}
	if set["sites"] {
		if *sitesFlag < 1 || *sitesFlag > ps.MaxSites {
			fmt.Fprintf(stderr, "concord-bench he: --sites %d, want 1..%d\n", *sitesFlag, ps.MaxSites)
			return 2
		}
		sitesList = []int{*sitesFlag}
	}
	var reports []party.RoundReport
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "params\tsites\tt\tB/param\tenc s/site\tagg s\tdec s\tcoord MB\tmax err\tplain s\the s\t")
	for _, p := range paramsList {
		for _, n := range sitesList {
			if !single {
				if why := skipDefault(p, n); why != "" {
					fmt.Fprintf(stderr, "skipped %s x %d: %s\n", human(p), n, why)
					continue
				}
			}
			t := *thrFlag
			if t == 0 {
				t = (2*n + 2) / 3
			}
			if t < 1 || t > n {
				fmt.Fprintf(stderr, "concord-bench he: threshold %d, want 1..%d\n", t, n)
				return 2
			}
			fmt.Fprintf(stderr, "running %s values x %d sites, t=%d ...\n", human(p), n, t)
			r, err := party.RoundBench(ps, p, n, t)
			if err != nil {
				fmt.Fprintf(stderr, "concord-bench he: %s x %d: %v\n", human(p), n, err)
				return 1
			}
			reports = append(reports, r)
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.3f\t%.3f\t%.3f\t%.1f\t%.2g\t%.3f\t%.3f\t\n",
				human(p), n, t, r.BytesPerParam, r.EncryptSecondsPerSite, r.AggregateSeconds, r.DecryptSeconds,
				float64(r.CoordinatorPeakBytes)/1e6, r.MaxAbsError, r.PlaintextRoundSeconds, r.HERoundSeconds)
		}
	}
	if err := tw.Flush(); err != nil {
		return 1
	}
	if *jsonFlag {
		var out any = reports
		if len(reports) == 1 {
			out = reports[0]
		}
		b, err := json.Marshal(out)
		if err != nil {
			fmt.Fprintf(stderr, "concord-bench he: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
	}
	return 0
}

func parseCount(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1_000, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1_000_000, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100_000_000/mult {
		return 0, fmt.Errorf("%q is not a count between 1 and 100M", s)
	}
	return n * mult, nil
}

func human(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return strconv.Itoa(n)
}
