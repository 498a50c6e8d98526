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
	fs.IntVar(&o.Width, "width", 0, "base width (0: 16 for the cnn, 64 for resnets)")
	fs.StringVar(&o.Model, "model", "cnn", "cnn (28x28 grey), resnet18 or resnet34 (GroupNorm ResNets at --size)")
	fs.IntVar(&o.Size, "size", 224, "resnets: input side in pixels, a multiple of 32")
	fs.IntVar(&o.Channels, "channels", 1, "resnets: input channels, 1 (grey) or 3 (RGB)")
	fs.StringVar(&o.Norm, "norm", "group", "cnn normalisation: group (layout concord.cnn/2) or none (concord.cnn/1)")
	fs.IntVar(&o.Threads, "threads", runtime.GOMAXPROCS(0), "threads for both sides (GOMAXPROCS and torch.set_num_threads)")
	fs.StringVar(&o.Script, "torch-script", "", "PyTorch benchmark script (default: deploy/trainer/bench_torch.py above the working directory)")
	fs.StringVar(&o.Python, "python", learning.DefaultPython(), "python3 with torch (Debian's python3-torch)")
	fs.BoolVar(&o.NoTorch, "no-pytorch", false, "skip the PyTorch side")
	fs.IntVar(&o.Rounds, "rounds", 1, "alternate the two sides this many times and report medians (a shared machine's load drifts)")
	if code, ok := parse(c, fs, args, stdout, stderr); !ok {
		return code
	}
	if o.Norm != "group" && o.Norm != "none" {
		return c.Usagef(stderr, "--norm %q: want group or none", o.Norm)
	}
	switch {
	case o.Model != "cnn" && o.Model != "resnet18" && o.Model != "resnet34":
		return c.Usagef(stderr, "--model %q: want cnn, resnet18 or resnet34", o.Model)
	case o.Model != "cnn" && (o.Size < 32 || o.Size > 1024 || o.Size%32 != 0 || (o.Channels != 1 && o.Channels != 3)):
		return c.Usagef(stderr, "--size %d --channels %d: a resnet takes a multiple of 32 up to 1024, and 1 or 3 channels", o.Size, o.Channels)
	case o.Width == 0 && o.Model == "cnn":
		o.Width = 16
	case o.Width == 0:
		o.Width = 64
	}
	if o.Batch < 1 || o.Seconds <= 0 || o.Threads < 1 || o.Width < 1 || o.Rounds < 1 || o.Rounds > 99 {
		return c.Usagef(stderr, "--batch, --seconds, --threads and --width must be positive, --rounds 1..99")
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
