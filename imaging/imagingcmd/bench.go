package imagingcmd

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/concord-fl/concord/imaging"
)

//go:embed pydicom_bench.py
var pydicomBench []byte

// Rate is one measured throughput.
// Rates are per CPU second when CPU time is known (it is robust on a loaded machine,
// where wall time depends on what else runs), else per wall second.
type Rate struct {
	Files      int     `json:"files"`
	Failed     int     `json:"failed"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	FilesPerS  float64 `json:"files_per_s"`
	MBPerS     float64 `json:"mb_per_s"`
	Note       string  `json:"note,omitempty"`
}

func (r *Rate) finish() {
	t := r.Seconds
	if r.CPUSeconds > 0 {
		t = r.CPUSeconds
	}
	if t > 0 {
		r.FilesPerS = float64(r.Files) / t
		r.MBPerS = float64(r.Bytes) / 1e6 / t
	}
}

// cpuTime is this process's user+system time.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchSet is the measurements on one set of files.
type BenchSet struct {
	Files       int     `json:"files"`
	Decode      Rate    `json:"decode"`
	DecodeMulti Rate    `json:"decode_parallel"`
	Standardise Rate    `json:"standardise"`
	Pydicom     *Rate   `json:"pydicom,omitempty"`
	Dcmtk       *Rate   `json:"dcmtk,omitempty"`
	SpeedupVsPy float64 `json:"speedup_vs_pydicom,omitempty"`
}

// BenchResult is the JSON line concord-bench dicom prints last.
type BenchResult struct {
	Dir          string   `json:"dir"`
	Pipeline     string   `json:"pipeline"`
	PipelineHash string   `json:"pipeline_hash"`
	Repeat       int      `json:"repeat"`
	CPUs         int      `json:"cpus"`
	GoVersion    string   `json:"go"`
	All          BenchSet `json:"all"`
	Uncompressed BenchSet `json:"uncompressed"`
}

// Bench is "concord-bench dicom --dir DIR [--json] [--repeat N] [--python PATH] [--no-peers]".
// It times decoding (to float32 with the modality LUT) and standardising with this
// package, and the same files decoded by pydicom (to float32 numpy arrays) and dcmtk's
// dcm2pnm, in the same run. Single-threaded numbers compare like with like.
func Bench(args []string, stdout, stderr io.Writer) int {
	fls := flag.NewFlagSet("dicom", flag.ContinueOnError)
	fls.SetOutput(stderr)
	dir := fls.String("dir", "", "folder of DICOM files")
	asJSON := fls.Bool("json", false, "print only the JSON result")
	repeat := fls.Int("repeat", 3, "passes; the best is reported")
	python := fls.String("python", "/usr/bin/python3", "python with pydicom and numpy")
	noPeers := fls.Bool("no-peers", false, "skip pydicom and dcmtk")
	width := fls.Int("size", 224, "standardised width and height")
	fl, pos := splitArgs(args, map[string]bool{"dir": true, "repeat": true, "python": true, "size": true})
	if err := fls.Parse(fl); err != nil {
		return 2
	}
	if *dir == "" && len(pos) == 1 {
		*dir = pos[0]
	}
	if *dir == "" || *repeat < 1 {
		fmt.Fprintln(stderr, "usage: concord-bench dicom --dir DIR [--json] [--repeat N] [--python PATH] [--no-peers] [--size N]")
		return 2
	}
	var files, native []string
	_ = filepath.WalkDir(*dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	// Only files both sides can decode are timed; which ones is decided once, by us.
	var usable []string
	for _, f := range files {
		im, err := imaging.ReadFile(f)
		if err != nil || !imaging.CanDecode(im.TransferSyntaxUID) {
			continue
		}
		if _, err := im.Frame(0); err != nil {
			continue
		}
		usable = append(usable, f)
		if !imaging.IsEncapsulated(im.TransferSyntaxUID) {
			native = append(native, f)
		}
	}
	if len(usable) == 0 {
		fmt.Fprintf(stderr, "bench: no decodable DICOM files under %s\n", *dir)
		return 1
	}
	if !*noPeers {
		// Time only files the peer decodes too, so that both sides do the same work.
		if ok, err := pydicomDecodable(usable, *python); err != nil {
			fmt.Fprintln(stderr, "bench: pydicom:", err)
		} else {
			usable, native = intersect(usable, ok), intersect(native, ok)
		}
	}
	pl := imaging.DefaultPipeline()
	pl.Width, pl.Height = *width, *width
	res := BenchResult{Dir: *dir, Pipeline: pl.Canonical(), PipelineHash: pl.Hash(), Repeat: *repeat, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	res.All = benchSet(usable, pl, *repeat, *python, *noPeers, stderr)
	if len(native) > 0 {
		res.Uncompressed = benchSet(native, pl, *repeat, *python, *noPeers, stderr)
	}
	if !*asJSON {
		for _, s := range []struct {
			name string
			b    BenchSet
		}{{"all decodable by both", res.All}, {"uncompressed", res.Uncompressed}} {
			fmt.Fprintf(stdout, "%s: %d files\n", s.name, s.b.Files)
			line := func(n string, r *Rate) {
				if r != nil && r.Seconds > 0 {
					fmt.Fprintf(stdout, "  %-34s %9.1f files/s %9.1f MB/s %s\n", n, r.FilesPerS, r.MBPerS, r.Note)
				}
			}
			line("concord decode (1 thread)", &s.b.Decode)
			line(fmt.Sprintf("concord decode (%d threads, wall)", runtime.GOMAXPROCS(0)), &s.b.DecodeMulti)
			line("concord decode+standardise", &s.b.Standardise)
			line("pydicom decode", s.b.Pydicom)
			line("dcmtk dcm2pnm", s.b.Dcmtk)
			if s.b.SpeedupVsPy > 0 {
				fmt.Fprintf(stdout, "  speed-up over pydicom (per CPU second, 1 thread each): %.2fx\n", s.b.SpeedupVsPy)
			}
		}
	}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	return 0
}

func benchSet(files []string, pl imaging.Pipeline, repeat int, python string, noPeers bool, stderr io.Writer) BenchSet {
	s := BenchSet{Files: len(files)}
	s.Decode = best(repeat, func() Rate { return ourPass(files, nil, 1) })
	s.DecodeMulti = best(repeat, func() Rate { return ourPass(files, nil, runtime.GOMAXPROCS(0)) })
	s.Standardise = best(repeat, func() Rate { return ourPass(files, &pl, 1) })
	if noPeers {
		return s
	}
	if r, err := pydicomPass(files, repeat, python); err != nil {
		fmt.Fprintln(stderr, "bench: pydicom:", err)
	} else {
		s.Pydicom = r
		if r.Seconds > 0 && s.Decode.Seconds > 0 {
			s.SpeedupVsPy = s.Decode.FilesPerS / r.FilesPerS
		}
	}
	if r, err := dcmtkPass(files); err != nil {
		fmt.Fprintln(stderr, "bench: dcmtk:", err)
	} else {
		s.Dcmtk = r
	}
	return s
}

func best(n int, f func() Rate) Rate {
	var b Rate
	for i := 0; i < n; i++ {
		r := f()
		if i == 0 || r.FilesPerS > b.FilesPerS {
			b = r
		}
	}
	return b
}

func ourPass(files []string, pl *imaging.Pipeline, workers int) Rate {
	type out struct {
		ok    bool
		bytes int64
	}
	one := func(f string) out {
		st, err := os.Stat(f)
		if err != nil {
			return out{}
		}
		im, err := imaging.ReadFile(f)
		if err != nil {
			return out{}
		}
		for i := 0; i < im.Frames; i++ {
			if pl != nil {
				_, err = pl.Apply(im, i)
			} else {
				_, err = im.Frame(i)
			}
			if err != nil {
				return out{}
			}
		}
		return out{true, st.Size()}
	}
	var r Rate
	t0, c0 := time.Now(), cpuTime()
	if workers <= 1 {
		for _, f := range files {
			o := one(f)
			if o.ok {
				r.Files++
				r.Bytes += o.bytes
			} else {
				r.Failed++
			}
		}
	} else {
		ch := make(chan string)
		res := make(chan out)
		for w := 0; w < workers; w++ {
			go func() {
				for f := range ch {
					res <- one(f)
				}
			}()
		}
		go func() {
			for _, f := range files {
				ch <- f
			}
			close(ch)
		}()
		for range files {
			o := <-res
			if o.ok {
				r.Files++
				r.Bytes += o.bytes
			} else {
				r.Failed++
			}
		}
	}
	r.Seconds = time.Since(t0).Seconds()
	if workers <= 1 {
		r.CPUSeconds = cpuTime() - c0
	}
	r.finish()
	return r
}

func pydicomPass(files []string, repeat int, python string) (*Rate, error) {
	script, err := writeScript()
	if err != nil {
		return nil, err
	}
	defer os.Remove(script)
	cmd := exec.Command(python, append([]string{script, strconv.Itoa(repeat)}, files...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, errb.String())
	}
	var r struct {
		Files   int     `json:"files"`
		Failed  int     `json:"failed"`
		Bytes   int64   `json:"bytes"`
		Seconds float64 `json:"seconds"`
		CPU     float64 `json:"cpu_seconds"`
		Pydicom string  `json:"pydicom"`
		Numpy   string  `json:"numpy"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(outb), &r); err != nil {
		return nil, fmt.Errorf("parse pydicom bench output: %w", err)
	}
	rate := &Rate{Files: r.Files, Failed: r.Failed, Bytes: r.Bytes, Seconds: r.Seconds, CPUSeconds: r.CPU, Note: "pydicom " + r.Pydicom + ", numpy " + r.Numpy + ", to float32"}
	rate.finish()
	return rate, nil
}

// dcmtkPass runs dcm2pnm once per file (dcmtk has no batch decoder), so process start-up
// is included in its time; the note says so.
func dcmtkPass(files []string) (*Rate, error) {
	tool, err := exec.LookPath("dcm2pnm")
	if err != nil {
		return nil, fmt.Errorf("dcm2pnm not found (apt-get install dcmtk)")
	}
	dir, err := os.MkdirTemp("", "concord-dcmtk-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	r := &Rate{Note: "dcm2pnm +Fa --write-raw-pnm, one process per file"}
	t0 := time.Now()
	for i, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			r.Failed++
			continue
		}
		out := filepath.Join(dir, strconv.Itoa(i))
		if err := exec.Command(tool, "+Fa", "--write-raw-pnm", f, out).Run(); err != nil {
			r.Failed++
			continue
		}
		r.Files++
		r.Bytes += st.Size()
	}
	r.Seconds = time.Since(t0).Seconds()
	r.finish()
	return r, nil
}

func intersect(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if in[s] {
			out = append(out, s)
		}
	}
	return out
}

func writeScript() (string, error) {
	tmp, err := os.CreateTemp("", "concord-pydicom-bench-*.py")
	if err != nil {
		return "", err
	}
	if _, err := tmp.Write(pydicomBench); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), tmp.Close()
}

// pydicomDecodable lists the files pydicom decodes.
func pydicomDecodable(files []string, python string) ([]string, error) {
	script, err := writeScript()
	if err != nil {
		return nil, err
	}
	defer os.Remove(script)
	cmd := exec.Command(python, append([]string{script, "check"}, files...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, errb.String())
	}
	var ok []string
	if err := json.Unmarshal(bytes.TrimSpace(outb), &ok); err != nil {
		return nil, fmt.Errorf("parse pydicom check output: %w", err)
	}
	return ok, nil
}
