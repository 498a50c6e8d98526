package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/serving"
)

// serveBench is `concord-bench serve --fhir URL [--file F] [--studies N] [--size S] [--clients C] [--json]`.
func serveBench(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	o := serving.BenchOptions{}
	fs.StringVar(&o.FHIR, "fhir", "", "base `URL` of the FHIR R4 endpoint results are delivered to (required)")
	fs.StringVar(&o.File, "file", "", "a chest X-ray DICOM `file` (default: the CR chest X-ray 4.dcm of github.com/suyashkumar/dicom@v1.1.0's testdata)")
	fs.IntVar(&o.Studies, "studies", 50, "studies sent, each the file with its UIDs remapped")
	fs.IntVar(&o.Size, "size", 224, "model input width and height")
	fs.IntVar(&o.Clients, "clients", 2, "concurrent STOW-RS clients")
	asJSON := fs.Bool("json", false, "print only the JSON result")
	if code, ok := parse(c, fs, args, stdout, stderr); !ok {
		return code
	}
	if o.FHIR == "" {
		return c.Usagef(stderr, "--fhir is required: the benchmark measures up to the FHIR server's confirmation")
	}
	if o.File == "" {
		f, err := defaultChestXRay()
		if err != nil {
			return c.Fail(stderr, err)
		}
		o.File = f
	}
	dir, err := os.MkdirTemp("", "concord-bench-serve")
	if err != nil {
		return c.Fail(stderr, err)
	}
	defer os.RemoveAll(dir)
	o.Dir = dir
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := serving.Bench(ctx, o)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "%d studies (%d bytes each, cnn at %dx%d, %d clients, %d CPUs): %.2f studies/s; arrival to FHIR delivered p50 %.0f ms, p99 %.0f ms; STOW-RS round trip p50 %.0f ms; FHIR transaction p50 %.0f ms\n",
			res.Studies, res.FileBytes, res.InputSize, res.InputSize, res.Clients, res.CPUs, res.StudiesPerS, res.P50Ms, res.P99Ms, res.STOWP50Ms, res.FHIRP50Ms)
	}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	return 0
}

// defaultChestXRay is the 2140×1760 CR chest X-ray that ships in a Go
// module the project's tests already rely on (see shared/README.md).
func defaultChestXRay() (string, error) {
	mod := filepath.Join(goModCache(), "github.com", "suyashkumar", "dicom@v1.1.0", "testdata", "4.dcm")
	if _, err := os.Stat(mod); err != nil {
		return "", fmt.Errorf("no --file given and %s is missing: run `go mod download -json github.com/suyashkumar/dicom@v1.1.0`, or pass --file", mod)
	}
	return mod, nil
}

func goModCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(filepath.SplitList(gopath)[0], "pkg", "mod")
}
