package learncmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/concord-fl/concord/learning"
)

// BenchReport is the last-line JSON of `concord-bench train --json`.
type BenchReport struct {
	Benchmark   string  `json:"benchmark"`
	Model       string  `json:"model"`
	Input       []int   `json:"input"`
	Batch       int     `json:"batch"`
	Width       int     `json:"width"`
	Norm        string  `json:"norm"`
	Optimizer   string  `json:"optimizer"`
	Threads     int     `json:"threads"`
	Seconds     float64 `json:"seconds"`
	Kernel      string  `json:"kernel"`
	SamplesPerS float64 `json:"samples_per_s"`
	// SamplesPerCPUS is samples per CPU-second of this process during the
	// timed loop: less sensitive than samples_per_s to other load.
	SamplesPerCPUS float64 `json:"samples_per_cpu_s,omitempty"`
	// LoadAverage is the machine's 1-minute load average before the run;
	// wall-clock figures are only comparable on a quiet machine.
	LoadAverage    float64 `json:"loadavg_1m"`
	PyTorchSamples float64 `json:"pytorch_samples_per_s,omitempty"`
	Ratio          float64 `json:"ratio_vs_pytorch,omitempty"`
	PyTorchError   string  `json:"pytorch_error,omitempty"`
	PyTorchVersion string  `json:"pytorch_version,omitempty"`
}

// Bench is the Go side of `concord-bench train [--json] [--batch 64]
// [--seconds N]`: it measures training samples/s of the cnn (28×28 grey,
// Adam) and then runs the PyTorch reference script on the same architecture,
// batch and thread count, in the same process tree, one after the other.
func Bench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the result as one JSON line on stdout")
	batch := fs.Int("batch", 64, "mini-batch size")
	seconds := fs.Float64("seconds", 10, "seconds of timed training on each side")
	width := fs.Int("width", 16, "cnn base width")
	norm := fs.String("norm", "group", "cnn normalisation: group (layout concord.cnn/2) or none (concord.cnn/1)")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "threads for both sides (GOMAXPROCS and torch.set_num_threads)")
	script := fs.String("torch-script", "", "PyTorch benchmark script (default: deploy/trainer/bench_torch.py above the working directory)")
	python := fs.String("python", defaultPython(), "python3 with torch (Debian's python3-torch)")
	noTorch := fs.Bool("no-pytorch", false, "skip the PyTorch side")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *norm != "group" && *norm != "none" {
		fmt.Fprintf(stderr, "bench train: --norm %q: want group or none\n", *norm)
		return 2
	}
	if *batch < 1 || *seconds <= 0 || *threads < 1 || *width < 1 {
		fmt.Fprintln(stderr, "bench train: --batch, --seconds, --threads and --width must be positive")
		return 2
	}
	runtime.GOMAXPROCS(*threads)
	rep := BenchReport{Benchmark: "train", Model: "cnn", Input: []int{1, 28, 28}, Batch: *batch, Width: *width, Norm: *norm,
		Optimizer: "adam", Threads: *threads, Seconds: *seconds, Kernel: learning.KernelName(), LoadAverage: loadAverage()}
	sps, spc, err := benchGo(*batch, *width, *norm, *seconds)
	if err != nil {
		fmt.Fprintf(stderr, "bench train: %v\n", err)
		return 1
	}
	rep.SamplesPerS, rep.SamplesPerCPUS = sps, spc
	fmt.Fprintf(stderr, "bench train: go %.1f samples/s, %.1f per CPU-second (%s kernel, %d threads, load %.1f)\n", sps, spc, rep.Kernel, *threads, rep.LoadAverage)
	if *noTorch {
		rep.PyTorchError = "skipped (--no-pytorch)"
	} else {
		ts, ver, err := benchTorch(*python, *script, *batch, *threads, *width, *norm, *seconds)
		if err != nil {
			rep.PyTorchError = err.Error()
			fmt.Fprintf(stderr, "bench train: pytorch: %v\n", err)
		} else {
			rep.PyTorchSamples, rep.PyTorchVersion = ts, ver
			rep.Ratio = sps / ts
			fmt.Fprintf(stderr, "bench train: pytorch %.1f samples/s; ratio %.2f\n", ts, rep.Ratio)
		}
	}
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "go %.1f samples/s  pytorch %.1f samples/s  ratio %.2f\n", rep.SamplesPerS, rep.PyTorchSamples, rep.Ratio)
	}
	return 0
}

// benchGo trains on random images for about the given time after a warm-up
// and returns samples per wall-clock second and per CPU-second.
func benchGo(batch, width int, norm string, seconds float64) (float64, float64, error) {
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: width, Norm: norm}, 1)
	if err != nil {
		return 0, 0, err
	}
	n := batch * 8
	rng := rand.New(rand.NewPCG(1, 2))
	ds := learning.Dataset{N: n, C: 1, H: 28, W: 28, X: make([]float32, n*784), Y: make([]int, n)}
	for i := range ds.X {
		ds.X[i] = float32(rng.NormFloat64())
	}
	for i := range ds.Y {
		ds.Y[i] = rng.IntN(2)
	}
	ctx := context.Background()
	cfg := learning.TrainConfig{Steps: 2, BatchSize: batch, Optimizer: "adam", LR: 1e-3}
	if _, err := m.Train(ctx, ds, cfg); err != nil { // warm-up
		return 0, 0, err
	}
	cfg.Steps = 4
	var samples int
	var spent float64
	cpu0 := cpuSeconds()
	for spent < seconds {
		res, err := m.Train(ctx, ds, cfg)
		if err != nil {
			return 0, 0, err
		}
		samples += res.Samples
		spent += res.Seconds
	}
	perCPU := 0.0
	if c := cpuSeconds() - cpu0; c > 0 {
		perCPU = float64(samples) / c
	}
	return float64(samples) / spent, perCPU, nil
}

func defaultPython() string {
	// Debian's python3 carries python3-torch; a pyenv or venv python3 found
	// first on PATH usually does not.
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

func findScript(script string) (string, error) {
	if script != "" {
		return script, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "deploy", "trainer", "bench_torch.py")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("deploy/trainer/bench_torch.py not found above the working directory; pass --torch-script")
		}
		dir = parent
	}
}

// benchTorch runs the PyTorch script and returns its samples/s from the last
// JSON line it prints.
func benchTorch(python, script string, batch, threads, width int, norm string, seconds float64) (float64, string, error) {
	path, err := findScript(script)
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds*float64(time.Second))*4+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, path, "--batch", strconv.Itoa(batch), "--threads", strconv.Itoa(threads),
		"--seconds", strconv.FormatFloat(seconds, 'f', -1, 64), "--width", strconv.Itoa(width), "--norm", norm)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		return 0, "", fmt.Errorf("%s %s: %w: %s (install Debian's python3-torch)", python, filepath.Base(path), err, msg)
	}
	var last string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") {
			last = l
		}
	}
	var r struct {
		SamplesPerS float64 `json:"samples_per_s"`
		Torch       string  `json:"torch"`
		Version     string  `json:"torch_version"`
	}
	if err := json.Unmarshal([]byte(last), &r); err != nil || r.SamplesPerS <= 0 {
		return 0, "", fmt.Errorf("%s printed no JSON line with samples_per_s", filepath.Base(path))
	}
	return r.SamplesPerS, r.Version + r.Torch, nil
}
