// Command concord-bench measures Concord's hot paths and prints JSON on
// its last line of output.
//
//	concord-bench aggregate --sites 10 --params 1000000   coordinator aggregation time and peak memory
//	concord-bench transfer --params 10000000              upload/download throughput over loopback mTLS
//	concord-bench he --params 1000000 --sites 10          secure aggregation (multiparty HE) round
//	concord-bench dicom --dir DIR                          DICOM decode + standardise vs pydicom and dcmtk
//	concord-bench train                                    CNN training samples/s vs PyTorch
//	concord-bench serve --fhir URL                         serving: studies/s, arrival → FHIR delivered p50/p99
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/coordinator"
	"github.com/concord-fl/concord/internal/version"
	"github.com/concord-fl/concord/sim"
)

const intro = "concord-bench: measure Concord's hot paths. Each benchmark prints a JSON object on its last line of stdout."

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--version" {
		args = append([]string{"version"}, args[1:]...)
	}
	return cli.Dispatch("concord-bench", intro, commands(), args, stdout, stderr)
}

func commands() []*cli.Command {
	return []*cli.Command{
		cli.Leaf(&cli.Command{Name: "aggregate", Args: "[--sites N] [--params P]",
			Synopsis: "coordinator aggregation time and peak memory (also at 1 site, to show it does not grow)"}, aggregate),
		cli.Leaf(&cli.Command{Name: "transfer", Args: "[--params P]", Synopsis: "upload and download throughput over loopback mutual TLS"}, transfer),
		cli.Leaf(&cli.Command{Name: "he", Args: "[--params P] [--sites N] [--threshold T] [--set NAME] [--json]",
			Synopsis: "secure aggregation round, encrypted vs plaintext (no flags: the full table)"}, heBench),
		cli.Leaf(&cli.Command{Name: "dicom", Args: "--dir DIR [--json] [--repeat N] [--python PATH] [--no-peers] [--size N]",
			Synopsis: "DICOM decode and standardise, with pydicom and dcmtk in the same run"}, dicomBench),
		cli.Leaf(&cli.Command{Name: "train", Args: "[--json] [--batch N] [--seconds S] [--width W] [--norm group|none] [--threads N] [--rounds N] [--no-pytorch]",
			Synopsis: "training samples/s of our CNN and of the same model in PyTorch"}, trainBench),
		cli.Leaf(&cli.Command{Name: "serve", Args: "--fhir URL [--file F] [--studies N] [--size S] [--clients C] [--json]",
			Synopsis: "serving: studies/s and latency from DICOM arrival (STOW-RS) to FHIR delivered"}, serveBench),
		cli.Version("concord-bench", version.Of(version.Default)),
	}
}

// parse parses a benchmark's flags; they take no positional argument.
func parse(c *cli.Command, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (int, bool) {
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code, false
	}
	return c.NoArgs(fs, pos, stderr)
}

func aggregate(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	sites := fs.Int("sites", 10, "sites whose updates are aggregated")
	params := fs.Int("params", 1_000_000, "model parameters")
	fs.Bool("json", true, "JSON on the last line (always)")
	if code, ok := parse(c, fs, args, stdout, stderr); !ok {
		return code
	}
	dir, err := os.MkdirTemp("", "concord-bench-aggregate")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	one, err := coordinator.AggregateBenchmark(ctx, dir, 1, *params)
	if err != nil {
		fmt.Fprintf(stderr, "concord-bench aggregate: %v\n", err)
		return 1
	}
	res, err := coordinator.AggregateBenchmark(ctx, dir, *sites, *params)
	if err != nil {
		fmt.Fprintf(stderr, "concord-bench aggregate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "%d sites x %d params: aggregation %.3fs, peak heap %.1f MB (1 site: %.3fs, %.1f MB); ingest %.2fs\n",
		res.Sites, res.Params, res.AggregateSeconds, float64(res.PeakHeapBytes)/1e6, one.AggregateSeconds, float64(one.PeakHeapBytes)/1e6, res.IngestSeconds)
	return emit(stdout, map[string]any{"benchmark": "aggregate", "sites": res.Sites, "params": res.Params,
		"aggregate_seconds": res.AggregateSeconds, "peak_heap_bytes": res.PeakHeapBytes, "ingest_seconds": res.IngestSeconds,
		"one_site_aggregate_seconds": one.AggregateSeconds, "one_site_peak_heap_bytes": one.PeakHeapBytes,
		"peak_bytes_per_param": float64(res.PeakHeapBytes) / float64(res.Params), "gomaxprocs": runtime.GOMAXPROCS(0)})
}

func transfer(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	params := fs.Int("params", 10_000_000, "approximate model parameters (a classifier width is chosen to match)")
	fs.Bool("json", true, "JSON on the last line (always)")
	if code, ok := parse(c, fs, args, stdout, stderr); !ok {
		return code
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := sim.BenchTransfer(ctx, *params)
	if err != nil {
		fmt.Fprintf(stderr, "concord-bench transfer: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "%d params (%.1f MB): upload %.2fs = %.1f MB/s, download %.2fs = %.1f MB/s\n",
		res.Params, float64(res.UpdateBytes)/1e6, res.UploadSeconds, res.UploadMBps, res.DownloadSeconds, res.DownloadMBps)
	return emit(stdout, res)
}

func emit(w io.Writer, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 1
	}
	fmt.Fprintln(w, string(b))
	return 0
}
