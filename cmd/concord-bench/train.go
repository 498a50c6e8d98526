package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/learning"
)

// trainBench is `concord-bench train [--json] [--batch 64] [--seconds N] ...`.
func trainBench(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	var o learning.TrainBenchOptions
	asJSON := fs.Bool("json", false, "print the result as one JSON line on stdout")
	fs.IntVar(&o.Batch, "batch", 64, "mini-batch size")
	fs.Float64Var(&o.Seconds, "seconds", 10, "seconds of timed training on each side")
	fs.IntVar(&o.Width, "width", 16, "cnn base width")
	fs.StringVar(&o.Norm, "norm", "group", "cnn normalisation: group (layout concord.cnn/2) or none (concord.cnn/1)")
	fs.IntVar(&o.Threads, "threads", runtime.GOMAXPROCS(0), "threads for both sides (GOMAXPROCS and torch.set_num_threads)")
	fs.StringVar(&o.Script, "torch-script", "", "PyTorch benchmark script (default: deploy/trainer/bench_torch.py above the working directory)")
	fs.StringVar(&o.Python, "python", learning.DefaultPython(), "python3 with torch (Debian's python3-torch)")
	fs.BoolVar(&o.NoTorch, "no-pytorch", false, "skip the PyTorch side")
	if code, ok := parse(c, fs, args, stdout, stderr); !ok {
		return code
	}
	if o.Norm != "group" && o.Norm != "none" {
		return c.Usagef(stderr, "--norm %q: want group or none", o.Norm)
	}
	if o.Batch < 1 || o.Seconds <= 0 || o.Threads < 1 || o.Width < 1 {
		return c.Usagef(stderr, "--batch, --seconds, --threads and --width must be positive")
	}
	rep, err := learning.TrainBench(o, stderr)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return c.Fail(stderr, err)
		}
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintf(stdout, "go %.1f samples/s  pytorch %.1f samples/s  ratio %.2f\n", rep.SamplesPerS, rep.PyTorchSamples, rep.Ratio)
	return 0
}
