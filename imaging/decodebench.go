package imaging

import (
	"bytes"
	_ "embed"
	"encoding/json"
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
)

//go:embed pydicom_bench.py
var pydicomBench []byte

// DecodeRate is one measured throughput.
// Rates are per CPU second when CPU time is known (it is robust on a loaded machine,
// where wall time depends on what else runs), else per wall second.
type DecodeRate struct {
	Files      int     `json:"files"`
	Failed     int     `json:"failed"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	FilesPerS  float64 `json:"files_per_s"`
	MBPerS     float64 `json:"mb_per_s"`
	Note       string  `json:"note,omitempty"`
}

func (r *DecodeRate) finish() {
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

// DecodeBenchSet is the measurements on one set of files.
type DecodeBenchSet struct {
	Files       int        `json:"files"`
	Decode      DecodeRate `json:"decode"`
	DecodeMulti DecodeRate `json:"decode_parallel"`
	Standardise DecodeRate `json:"standardise"`
	// StandardiseReduced is Standardise with resample reduced-area (JPEG 2000
	// decoded only down to the resolution the pipeline needs); jpeg2000 set only.
	StandardiseReduced *DecodeRate `json:"standardise_reduced,omitempty"`
	Pydicom            *DecodeRate `json:"pydicom,omitempty"`
	Dcmtk              *DecodeRate `json:"dcmtk,omitempty"`
	SpeedupVsPy        float64     `json:"speedup_vs_pydicom,omitempty"`
	// WallSpeedupVsPy compares wall times of Decode (one file after another, each
	// decoder free to use every core) and pydicom (one thread).
	WallSpeedupVsPy float64 `json:"wall_speedup_vs_pydicom,omitempty"`
}

// DecodeBenchResult is the JSON line concord-bench dicom prints last.
type DecodeBenchResult struct {
	Dir          string         `json:"dir"`
	Pipeline     string         `json:"pipeline"`
	PipelineHash string         `json:"pipeline_hash"`
	Repeat       int            `json:"repeat"`
	CPUs         int            `json:"cpus"`
	GoVersion    string         `json:"go"`
	All          DecodeBenchSet `json:"all"`
	Uncompressed DecodeBenchSet `json:"uncompressed"`
	JPEG2000     DecodeBenchSet `json:"jpeg2000"`
}

// DecodeBenchOptions configure DecodeBench.
type DecodeBenchOptions struct {
	Dir     string // folder of DICOM files
	Repeat  int    // passes; the best is reported
	Python  string // python with pydicom and numpy
	NoPeers bool   // skip pydicom and dcmtk
	Size    int    // standardised width and height
}

// DecodeBench times decoding (to float32 with the modality LUT) and
// standardising with this package, and the same files decoded by pydicom
// (to float32 numpy arrays) and dcmtk's dcm2pnm, in the same run, for
// concord-bench dicom. Single-threaded numbers compare like with like. A
// missing peer is reported on log and left out.
func DecodeBench(o DecodeBenchOptions, log io.Writer) (DecodeBenchResult, error) {
	var files, native []string
	_ = filepath.WalkDir(o.Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	// Only files both sides can decode are timed; which ones is decided once, by us.
	var usable, j2k []string
	for _, f := range files {
		im, err := ReadFile(f)
		if err != nil || !CanDecode(im.TransferSyntaxUID) {
			continue
		}
		if _, err := im.Frame(0); err != nil {
			continue
		}
		usable = append(usable, f)
		if !IsEncapsulated(im.TransferSyntaxUID) {
			native = append(native, f)
		}
		if im.TransferSyntaxUID == TSJ2KLossless || im.TransferSyntaxUID == TSJ2K {
			j2k = append(j2k, f)
		}
	}
	if len(usable) == 0 {
		return DecodeBenchResult{}, fmt.Errorf("no decodable DICOM files under %s", o.Dir)
	}
	if !o.NoPeers {
		// Time only files the peer decodes too, so that both sides do the same work.
		if ok, err := pydicomDecodable(usable, o.Python); err != nil {
			fmt.Fprintln(log, "bench: pydicom:", err)
		} else {
			usable, native, j2k = intersect(usable, ok), intersect(native, ok), intersect(j2k, ok)
		}
	}
	pl := DefaultPipeline()
	pl.Width, pl.Height = o.Size, o.Size
	res := DecodeBenchResult{Dir: o.Dir, Pipeline: pl.Canonical(), PipelineHash: pl.Hash(), Repeat: o.Repeat, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	res.All = benchSet(usable, pl, o.Repeat, o.Python, o.NoPeers, log)
	if len(native) > 0 {
		res.Uncompressed = benchSet(native, pl, o.Repeat, o.Python, o.NoPeers, log)
	}
	if len(j2k) > 0 {
		res.JPEG2000 = benchSet(j2k, pl, o.Repeat, o.Python, o.NoPeers, log)
		red := pl
		red.Resample = "reduced-area"
		dec := newDecoders()
		r := best(o.Repeat, func() DecodeRate { return ourPass(dec, j2k, &red, 1) })
		res.JPEG2000.StandardiseReduced = &r
	}
	return res, nil
}

func benchSet(files []string, pl Pipeline, repeat int, python string, noPeers bool, stderr io.Writer) DecodeBenchSet {
	s := DecodeBenchSet{Files: len(files)}
	dec := newDecoders()
	s.Decode = best(repeat, func() DecodeRate { return ourPass(dec, files, nil, 1) })
	s.DecodeMulti = best(repeat, func() DecodeRate { return ourPass(dec, files, nil, runtime.GOMAXPROCS(0)) })
	s.Standardise = best(repeat, func() DecodeRate { return ourPass(dec, files, &pl, 1) })
	if noPeers {
		return s
	}
	if r, err := pydicomPass(files, repeat, python); err != nil {
		fmt.Fprintln(stderr, "bench: pydicom:", err)
	} else {
		s.Pydicom = r
		if r.Seconds > 0 && s.Decode.Seconds > 0 {
			s.SpeedupVsPy = s.Decode.FilesPerS / r.FilesPerS
			s.WallSpeedupVsPy = r.Seconds / s.Decode.Seconds
		}
	}
	if r, err := dcmtkPass(files); err != nil {
		fmt.Fprintln(stderr, "bench: dcmtk:", err)
	} else {
		s.Dcmtk = r
	}
	return s
}

func best(n int, f func() DecodeRate) DecodeRate {
	var b DecodeRate
	for i := 0; i < n; i++ {
		r := f()
		if i == 0 || r.FilesPerS > b.FilesPerS {
			b = r
		}
	}
	return b
}

// newDecoders is one Decoder per worker, kept over a set's passes as a folder
// reader keeps one over its files: the passes measure the steady state, where
// buffers are reused, not the first file.
func newDecoders() []*Decoder {
	d := make([]*Decoder, runtime.GOMAXPROCS(0))
	for i := range d {
		d[i] = new(Decoder)
	}
	return d
}

func ourPass(dec []*Decoder, files []string, pl *Pipeline, workers int) DecodeRate {
	type out struct {
		ok    bool
		bytes int64
	}
	workers = min(workers, len(dec))
	one := func(d *Decoder, f string) out {
		st, err := os.Stat(f)
		if err != nil {
			return out{}
		}
		im, err := d.ReadFile(f)
		if err != nil {
			return out{}
		}
		for i := 0; i < im.Frames; i++ {
			if pl != nil {
				_, err = pl.Apply(im, i)
			} else {
				_, err = d.Frame(im, i)
			}
			if err != nil {
				return out{}
			}
		}
		return out{true, st.Size()}
	}
	var r DecodeRate
	t0, c0 := time.Now(), cpuTime()
	if workers <= 1 {
		for _, f := range files {
			o := one(dec[0], f)
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
			go func(d *Decoder) {
				for f := range ch {
					res <- one(d, f)
				}
			}(dec[w])
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

func pydicomPass(files []string, repeat int, python string) (*DecodeRate, error) {
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
	rate := &DecodeRate{Files: r.Files, Failed: r.Failed, Bytes: r.Bytes, Seconds: r.Seconds, CPUSeconds: r.CPU, Note: "pydicom " + r.Pydicom + ", numpy " + r.Numpy + ", to float32"}
	rate.finish()
	return rate, nil
}

// dcmtkPass runs dcm2pnm once per file (dcmtk has no batch decoder), so process start-up
// is included in its time; the note says so.
func dcmtkPass(files []string) (*DecodeRate, error) {
	tool, err := exec.LookPath("dcm2pnm")
	if err != nil {
		return nil, fmt.Errorf("dcm2pnm not found (apt-get install dcmtk)")
	}
	dir, err := os.MkdirTemp("", "concord-dcmtk-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	r := &DecodeRate{Note: "dcm2pnm +Fa --write-raw-pnm, one process per file"}
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
