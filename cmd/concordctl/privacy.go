package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/privacy/dp"
)

// privacyCommand is `concordctl privacy spent|plan`: the accountant of
// package dp, offline. It reads no config and calls no coordinator, so a
// compliance officer can recompute any epsilon Concord reports.
func privacyCommand(g *globals) *cli.Command {
	return &cli.Command{Name: "privacy", Synopsis: "compute a DP-SGD epsilon, or the noise a target epsilon needs (offline)",
		Help: "concordctl privacy: Concord's differential-privacy accountant, offline.\n\n" +
			"It answers for the DP-SGD that a site runs (Poisson-subsampled Gaussian mechanism,\n" +
			"Rényi DP accountant " + dp.AccountantVersion + "), without a coordinator or a config file.",
		Sub: []*cli.Command{privacySpent(g), privacyPlan(g)}}
}

// privacyFlags are the flags both commands share; the set ones are checked
// for presence, since every value matters to the answer.
type privacyFlags struct {
	noise, rate, delta, eps *float64
	steps                   *int
	json                    *bool
}

func declarePrivacyFlags(fs *flag.FlagSet, g *globals, plan bool) privacyFlags {
	var f privacyFlags
	if plan {
		f.eps = fs.Float64("epsilon", 0, "the target `EPSILON` (required)")
	} else {
		f.noise = fs.Float64("noise-multiplier", 0, "the noise multiplier `SIGMA`: noise std / clip norm (required)")
	}
	f.rate = fs.Float64("sample-rate", 0, "the probability `Q` that an example is in a step's batch (required)")
	f.steps = fs.Int("steps", 0, "the number of training `STEPS` over all rounds (required)")
	f.delta = fs.Float64("delta", 0, "`DELTA`, typically below 1/number of records (required)")
	f.json = fs.Bool("json", g.json, "print JSON")
	return f
}

// missing names the first required flag not given.
func missing(fs *flag.FlagSet, names ...string) string {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range names {
		if !set[n] {
			return n
		}
	}
	return ""
}

func privacyLeaf(c *cli.Command, g *globals, plan bool, required []string,
	do func(f privacyFlags, stdout io.Writer) error) *cli.Command {
	c.Run = func(args []string, stdout, stderr io.Writer) int {
		fs := c.NewFlagSet(stderr)
		f := declarePrivacyFlags(fs, g, plan)
		pos, code, ok := c.Parse(fs, args, stdout, stderr)
		if !ok {
			return code
		}
		if code, ok := c.NoArgs(fs, pos, stderr); !ok {
			return code
		}
		if name := missing(fs, required...); name != "" {
			return c.Usagef(stderr, "--%s is required", name)
		}
		if err := do(f, stdout); err != nil {
			if errors.Is(err, dp.ErrInvalid) {
				return c.Usagef(stderr, "%v", err)
			}
			return c.Fail(stderr, err)
		}
		return 0
	}
	return c
}

func privacySpent(g *globals) *cli.Command {
	c := &cli.Command{Name: "spent", Args: "--noise-multiplier SIGMA --sample-rate Q --steps N --delta DELTA [--json]",
		Synopsis: "the epsilon of a DP-SGD run",
		Help: "Print the epsilon that DP-SGD with these parameters guarantees at DELTA: each of N steps\n" +
			"includes every record with probability Q, clips each record's gradient and adds Gaussian\n" +
			"noise of SIGMA times the clip norm. Smaller epsilon is more private. The epsilon protects\n" +
			"each record (record level); the orders and conversion are documented in package privacy/dp.\n\n" +
			"  concordctl privacy spent --noise-multiplier 1.1 --sample-rate 0.01 --steps 3000 --delta 1e-5"}
	return privacyLeaf(c, g, false, []string{"noise-multiplier", "sample-rate", "steps", "delta"},
		func(f privacyFlags, stdout io.Writer) error {
			m := dp.Gaussian{NoiseMultiplier: *f.noise, SampleRate: *f.rate, Steps: *f.steps}
			r, err := dp.RDP(m, dp.DefaultOrders())
			if err != nil {
				return err
			}
			eps, order, err := dp.Epsilon(r, dp.DefaultOrders(), *f.delta)
			if err != nil {
				return err
			}
			if *f.json {
				return writeJSON(stdout, map[string]any{"epsilon": jsonNumber(eps), "delta": *f.delta,
					"noise_multiplier": *f.noise, "sample_rate": *f.rate, "steps": *f.steps,
					"order": order, "level": string(dp.Record), "accountant": dp.AccountantVersion})
			}
			if math.IsInf(eps, 1) {
				fmt.Fprintf(stdout, "epsilon: infinite at delta %g: without noise DP-SGD guarantees nothing.\n", *f.delta)
				return nil
			}
			fmt.Fprintf(stdout, "epsilon: %.6g at delta %g (record level)\n", eps, *f.delta)
			fmt.Fprintf(stdout, "for %d steps at sample rate %g with noise multiplier %g (Rényi order %g, accountant %s)\n",
				*f.steps, *f.rate, *f.noise, order, dp.AccountantVersion)
			return nil
		})
}

func privacyPlan(g *globals) *cli.Command {
	c := &cli.Command{Name: "plan", Args: "--epsilon EPSILON --delta DELTA --sample-rate Q --steps N [--json]",
		Synopsis: "the noise multiplier that keeps a DP-SGD run within a target epsilon",
		Help: "Print the smallest noise multiplier (to a relative precision of 1e-6, rounded up) for\n" +
			"which N steps of DP-SGD at sample rate Q stay within (EPSILON, DELTA), and the epsilon it\n" +
			"gives, which never exceeds the target.\n\n" +
			"  concordctl privacy plan --epsilon 8 --delta 1e-5 --sample-rate 0.04 --steps 2250"}
	return privacyLeaf(c, g, true, []string{"epsilon", "sample-rate", "steps", "delta"},
		func(f privacyFlags, stdout io.Writer) error {
			noise, err := dp.Plan(*f.eps, *f.delta, *f.rate, *f.steps)
			if err != nil {
				return err
			}
			got, err := dp.Spent(noise, *f.rate, *f.steps, *f.delta)
			if err != nil {
				return err
			}
			if *f.json {
				return writeJSON(stdout, map[string]any{"noise_multiplier": noise, "epsilon": *f.eps, "delta": *f.delta,
					"sample_rate": *f.rate, "steps": *f.steps, "achieved_epsilon": got,
					"level": string(dp.Record), "accountant": dp.AccountantVersion})
			}
			fmt.Fprintf(stdout, "noise multiplier: %.7g\n", noise)
			fmt.Fprintf(stdout, "gives epsilon %.6g at delta %g over %d steps at sample rate %g (target %g, record level)\n",
				got, *f.delta, *f.steps, *f.rate, *f.eps)
			return nil
		})
}

// jsonNumber is v, or nil (JSON null) for an infinite epsilon, which JSON
// cannot write as a number.
func jsonNumber(v float64) any {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return v
}
