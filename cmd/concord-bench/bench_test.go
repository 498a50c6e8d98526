package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/learning"
)

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// writeSet writes n small synthetic CR images to dir.
func writeSet(t *testing.T, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		f := imaging.SyntheticFile{Modality: "CR", Rows: 32, Columns: 40,
			StudyInstanceUID: "1.2.3.4", SeriesInstanceUID: "1.2.3.4.5", SOPInstanceUID: "1.2.3.4.5." + string(rune('1'+i))}
		f.Pixels = make([]uint16, 32*40)
		for k := range f.Pixels {
			f.Pixels[k] = uint16(k * (i + 1) % 65535)
		}
		if err := imaging.WriteFile(filepath.Join(dir, string(rune('a'+i))+".dcm"), f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBenchCommand(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 3)
	var out, errb bytes.Buffer
	if rc := run([]string{"dicom", "--dir", dir, "--json", "--repeat", "1", "--no-peers", "--size", "16"}, &out, &errb); rc != 0 {
		t.Fatalf("bench rc %d: %s", rc, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var r imaging.DecodeBenchResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not JSON: %v", err)
	}
	if r.All.Files != 3 || r.All.Decode.Files != 3 || r.All.Decode.FilesPerS <= 0 || r.Uncompressed.Files != 3 {
		t.Fatalf("bench result %+v", r)
	}
}

// TestBenchReport prints the full comparison when CONCORD_BENCH_DIR is set; it is a
// measurement, not an assertion, and is skipped otherwise.
func TestBenchReport(t *testing.T) {
	dir := os.Getenv("CONCORD_BENCH_DIR")
	if dir == "" {
		t.Skip("set CONCORD_BENCH_DIR to run the peer comparison")
	}
	var out, errb bytes.Buffer
	rc := run([]string{"dicom", "--dir", dir}, &out, &errb)
	t.Logf("rc %d\n%s\n%s", rc, out.String(), errb.String())
}

func TestBenchWithoutPyTorchScript(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"train", "--json", "--seconds", "0.5", "--batch", "16", "--torch-script", filepath.Join(t.TempDir(), "absent.py")}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep learning.TrainBenchReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.SamplesPerS <= 0 || rep.PyTorchError == "" || rep.Ratio != 0 || rep.Batch != 16 {
		t.Fatalf("report %+v: want our samples/s and a pytorch_error", rep)
	}
}

// --rounds N times the Go side N times and reports the median, with each
// round's figure.
func TestBenchRounds(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--json", "--seconds", "0.3", "--batch", "16", "--no-pytorch", "--rounds", "3"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep learning.TrainBenchReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Rounds != 3 || len(rep.GoRounds) != 3 {
		t.Fatalf("report %+v: want 3 rounds", rep)
	}
	r := append([]float64(nil), rep.GoRounds...)
	sort.Float64s(r)
	if rep.SamplesPerS != r[1] {
		t.Fatalf("samples/s %v is not the median of %v", rep.SamplesPerS, rep.GoRounds)
	}
}

// TestBenchAgainstPyTorch runs the real comparison. It needs Debian's
// python3-torch and deploy/trainer/bench_torch.py; in CI their absence fails.
func TestBenchAgainstPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("starting PyTorch takes tens of seconds on a loaded machine")
	}
	script := filepath.Join(testenv.RepoRoot(), "deploy", "trainer", "bench_torch.py")
	py := learning.DefaultPython()
	missing := ""
	if _, err := os.Stat(script); err != nil {
		missing = "deploy/trainer/bench_torch.py"
	} else if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		missing = "python3-torch (" + py + " cannot import torch)"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing", missing)
		}
		t.Skipf("%s is missing", missing)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"train", "--json", "--seconds", "1", "--torch-script", script}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep learning.TrainBenchReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.PyTorchError != "" || rep.PyTorchSamples <= 0 || rep.Ratio <= 0 {
		t.Fatalf("report %+v: want a PyTorch figure and a ratio", rep)
	}
}

// TestResNetBenchAgainstPyTorch: --model resnet18 times our resnet18 and
// PyTorch's build of the same manifest (graph.py), here at 32×32 and base
// width 8 to stay short (about 10 s, most of it starting PyTorch).
func TestResNetBenchAgainstPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("starting PyTorch takes tens of seconds on a loaded machine")
	}
	testenv.Python(t, "torch", "numpy")
	var out, errb bytes.Buffer
	args := []string{"train", "--json", "--model", "resnet18", "--size", "32", "--width", "8", "--channels", "3", "--batch", "4", "--seconds", "0.5"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep learning.TrainBenchReport
	if err := json.Unmarshal([]byte(lastLine(out.String())), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Model != "resnet18" || !slices.Equal(rep.Input, []int{3, 32, 32}) || rep.SamplesPerS <= 0 || rep.PyTorchError != "" || rep.PyTorchSamples <= 0 {
		t.Fatalf("report %+v: want resnet18 at 3x32x32 with both figures", rep)
	}
}

// TestUNetOnSharedCTSeg trains the U-Net on the shared real CT slices and
// their DICOM SEG liver mask, holding the middle slice out.
