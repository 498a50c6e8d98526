package extrainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// TorchBench runs deploy/trainer/bench_torch.py, the PyTorch speed baseline
// for the Go trainer: the same "cnn" trained with Adam on random data.
type TorchBench struct {
	// Python is the interpreter with torch; "" means /usr/bin/python3
	// (Debian's, which python3-torch installs into).
	Python string
	// Script is the path of bench_torch.py.
	Script   string
	Batch    int
	Threads  int
	Seconds  float64
	Width    int
	Size     int // image side; divisible by 4
	Channels int
	Classes  int
}

// TorchBenchResult is the script's JSON line.
type TorchBenchResult struct {
	SamplesPerS float64 `json:"samples_per_s"`
	Threads     int     `json:"threads"`
	Batch       int     `json:"batch"`
	Steps       int     `json:"steps"`
	Seconds     float64 `json:"seconds"`
	Device      string  `json:"device"`
	Torch       string  `json:"torch"`
}

// Run executes the benchmark and parses its result.
func (b TorchBench) Run(ctx context.Context) (TorchBenchResult, error) {
	if b.Script == "" {
		return TorchBenchResult{}, errors.New("torch benchmark: no script path; point it at deploy/trainer/bench_torch.py")
	}
	py := b.Python
	if py == "" {
		py = "/usr/bin/python3"
	}
	args := []string{b.Script,
		"--batch", strconv.Itoa(b.Batch), "--threads", strconv.Itoa(b.Threads),
		"--seconds", strconv.FormatFloat(b.Seconds, 'g', -1, 64), "--width", strconv.Itoa(b.Width),
		"--size", strconv.Itoa(b.Size), "--channels", strconv.Itoa(b.Channels), "--classes", strconv.Itoa(b.Classes)}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return TorchBenchResult{}, fmt.Errorf("torch benchmark: %s %s: %w: %s", py, b.Script, err, lastLine(stderr.String()))
	}
	var r TorchBenchResult
	if err := json.Unmarshal([]byte(lastLine(stdout.String())), &r); err != nil {
		return TorchBenchResult{}, fmt.Errorf("torch benchmark: parse output %q: %w", lastLine(stdout.String()), err)
	}
	if !(r.SamplesPerS > 0) {
		return TorchBenchResult{}, fmt.Errorf("torch benchmark: reported %v samples/s", r.SamplesPerS)
	}
	return r, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
