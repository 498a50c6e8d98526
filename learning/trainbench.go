package learning

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TrainBenchReport is the last-line JSON of `concord-bench train --json`.
type TrainBenchReport struct {
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
	// With Rounds > 1 the sides alternate; the figures above are then the
	// medians (Ratio the median of each round's ratio) and these each
	// round's samples/s.
	Rounds        int       `json:"rounds"`
	GoRounds      []float64 `json:"go_rounds,omitempty"`
	PyTorchRounds []float64 `json:"pytorch_rounds,omitempty"`
}

// TrainBenchOptions configure TrainBench.
type TrainBenchOptions struct {
	Batch   int     // mini-batch size
	Seconds float64 // seconds of timed training on each side
	Width   int     // base width
	Norm    string  // cnn: group or none
	// Model is "cnn" (the default, 28×28 grey) or a family, "resnet18" or
	// "resnet34", at Size×Size with Channels channels; PyTorch then builds
	// the same graph from our manifest (graph.py).
	Model    string
	Size     int
	Channels int
	Threads  int    // threads for both sides
	Script   string // PyTorch benchmark script; "" finds deploy/trainer/bench_torch.py upwards
	Python   string // python3 with torch; "" is Debian's
	NoTorch  bool   // skip the PyTorch side
	Rounds   int    // times the two sides alternate; 0 is 1
}

// TrainBench measures training samples/s of the cnn (28×28 grey, Adam), or
// of a resnet family at o.Size, and then runs the PyTorch reference script
// on the same architecture, batch and thread count, one after the other:
// the Go side of concord-bench train. It sets GOMAXPROCS to o.Threads. A PyTorch failure is recorded in
// the report, not returned; progress goes to log.
func TrainBench(o TrainBenchOptions, log io.Writer) (TrainBenchReport, error) {
	spec := Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: o.Width, Norm: o.Norm}
	if o.Model != "" && o.Model != "cnn" {
		spec = Spec{Arch: o.Model, Channels: o.Channels, Height: o.Size, Width: o.Size, Classes: 2, BaseWidth: o.Width}
		o.Norm = "group"
	}
	if o.Norm != "group" && o.Norm != "none" {
		return TrainBenchReport{}, fmt.Errorf("norm %q: want group or none", o.Norm)
	}
	if o.Batch < 1 || o.Seconds <= 0 || o.Threads < 1 || o.Width < 1 {
		return TrainBenchReport{}, errors.New("batch, seconds, threads and width must be positive")
	}
	if o.Python == "" {
		o.Python = DefaultPython()
	}
	runtime.GOMAXPROCS(o.Threads)
	m, err := New(spec, 1)
	if err != nil {
		return TrainBenchReport{}, err
	}
	rep := TrainBenchReport{Benchmark: "train", Model: spec.Arch, Input: []int{spec.Channels, spec.Height, spec.Width}, Batch: o.Batch,
		Width: o.Width, Norm: o.Norm, Optimizer: "adam", Threads: o.Threads, Seconds: o.Seconds, Kernel: KernelName(), LoadAverage: loadAverage()}
	var manifest string
	if m.graph != nil {
		rep.Model = m.Layout().Family
		f, err := os.CreateTemp("", "concord-bench-*.json")
		if err != nil {
			return rep, err
		}
		defer os.Remove(f.Name())
		_, err = f.Write(m.Layout().JSON())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rep, err
		}
		manifest = f.Name()
	}
	rep.Rounds = max(o.Rounds, 1)
	var gos, cpus, torches, ratios []float64
	for r := range rep.Rounds {
		sps, spc, err := benchGo(m, o.Batch, o.Seconds)
		if err != nil {
			return rep, err
		}
		gos, cpus = append(gos, sps), append(cpus, spc)
		fmt.Fprintf(log, "bench train: go %.1f samples/s, %.1f per CPU-second (%s kernel, %d threads, load %.1f)\n", sps, spc, rep.Kernel, o.Threads, loadAverage())
		if o.NoTorch {
			continue
		}
		ts, ver, err := benchTorch(o.Python, o.Script, o.Batch, o.Threads, o.Width, o.Norm, o.Seconds, manifest)
		if err != nil {
			rep.PyTorchError = err.Error()
			fmt.Fprintf(log, "bench train: pytorch: %v\n", err)
			break
		}
		rep.PyTorchVersion = ver
		torches, ratios = append(torches, ts), append(ratios, sps/ts)
		fmt.Fprintf(log, "bench train: pytorch %.1f samples/s; ratio %.2f (round %d of %d)\n", ts, sps/ts, r+1, rep.Rounds)
	}
	rep.SamplesPerS, rep.SamplesPerCPUS = median(gos), median(cpus)
	if rep.Rounds > 1 {
		rep.GoRounds, rep.PyTorchRounds = gos, torches
	}
	if o.NoTorch {
		rep.PyTorchError = "skipped (--no-pytorch)"
	} else if len(torches) > 0 && rep.PyTorchError == "" {
		rep.PyTorchSamples, rep.Ratio = median(torches), median(ratios)
	}
	return rep, nil
}

// median of a non-empty list (the mean of the middle two for an even one).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// benchGo trains on random images for about the given time after a
// warm-up, in one Train call as a site's round runs, and returns samples
// per wall-clock second and per CPU-second of the steps after the warm-up:
// the steady state, as bench_torch.py times PyTorch's (the per-round set-up
// of buffers and optimizer state is left out on both sides).
func benchGo(m *Model, batch int, seconds float64) (float64, float64, error) {
	s := m.Spec()
	n, warm := batch*8, 4
	if m.graph != nil { // large inputs: fewer images in memory, fewer warm-up steps
		n, warm = batch*2, 2
	}
	px := s.Channels * s.Height * s.Width
	rng := rand.New(rand.NewPCG(1, 2))
	ds := Dataset{N: n, C: s.Channels, H: s.Height, W: s.Width, X: make([]float32, n*px), Y: make([]int, n)}
	for i := range ds.X {
		ds.X[i] = float32(rng.NormFloat64())
	}
	for i := range ds.Y {
		ds.Y[i] = rng.IntN(2)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		samples0, samples int
		t0, cpu0, cpu     float64
		elapsed           float64
	)
	cfg := TrainConfig{Steps: 1 << 30, BatchSize: batch, Optimizer: "adam", LR: 1e-3, ProgressEvery: 1,
		Progress: func(p TrainProgress) {
			switch {
			case p.Step == warm:
				samples0, t0, cpu0 = p.Samples, p.Elapsed.Seconds(), cpuSeconds()
			case p.Step > warm:
				samples, elapsed, cpu = p.Samples-samples0, p.Elapsed.Seconds()-t0, cpuSeconds()-cpu0
				if elapsed >= seconds {
					stop()
				}
			}
		}}
	if _, err := m.Train(ctx, ds, cfg); err != nil && !errors.Is(err, context.Canceled) {
		return 0, 0, err
	}
	if samples == 0 || elapsed <= 0 {
		return 0, 0, errors.New("bench train: no timed steps")
	}
	perCPU := 0.0
	if cpu > 0 {
		perCPU = float64(samples) / cpu
	}
	return float64(samples) / elapsed, perCPU, nil
}

// DefaultPython is Debian's python3 when it exists, else python3 on PATH.
func DefaultPython() string {
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
func benchTorch(python, script string, batch, threads, width int, norm string, seconds float64, manifest string) (float64, string, error) {
	path, err := findScript(script)
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds*float64(time.Second))*4+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, path, "--batch", strconv.Itoa(batch), "--threads", strconv.Itoa(threads),
		"--seconds", strconv.FormatFloat(seconds, 'f', -1, 64), "--width", strconv.Itoa(width), "--norm", norm)
	if manifest != "" {
		cmd.Args = append(cmd.Args, "--manifest", manifest, "--warmup", "1")
	}
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
