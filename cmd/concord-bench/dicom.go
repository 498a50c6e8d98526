package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/imaging"
)

// dicomBench is `concord-bench dicom --dir DIR [--json] [--repeat N] [--python PATH] [--no-peers] [--size N]`:
// the table for people unless --json, then the JSON line.
func dicomBench(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	var o imaging.DecodeBenchOptions
	fs.StringVar(&o.Dir, "dir", "", "folder of DICOM files")
	asJSON := fs.Bool("json", false, "print only the JSON result")
	fs.IntVar(&o.Repeat, "repeat", 3, "passes; the best is reported")
	fs.StringVar(&o.Python, "python", "/usr/bin/python3", "python with pydicom and numpy")
	fs.BoolVar(&o.NoPeers, "no-peers", false, "skip pydicom and dcmtk")
	fs.IntVar(&o.Size, "size", 224, "standardised width and height")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if o.Dir == "" && len(pos) == 1 {
		o.Dir, pos = pos[0], nil
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	if o.Dir == "" || o.Repeat < 1 || o.Size < 1 {
		return c.Usagef(stderr, "--dir is required; --repeat and --size must be positive")
	}
	res, err := imaging.DecodeBench(o, stderr)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if !*asJSON {
		for _, s := range []struct {
			name string
			b    imaging.DecodeBenchSet
		}{{"all decodable by both", res.All}, {"uncompressed", res.Uncompressed}, {"jpeg 2000", res.JPEG2000}} {
			if s.b.Files == 0 {
				continue
			}
			fmt.Fprintf(stdout, "%s: %d files\n", s.name, s.b.Files)
			line := func(n string, r *imaging.DecodeRate) {
				if r != nil && r.Seconds > 0 {
					fmt.Fprintf(stdout, "  %-34s %9.1f files/s %9.1f MB/s %s\n", n, r.FilesPerS, r.MBPerS, r.Note)
				}
			}
			line("concord decode (1 thread)", &s.b.Decode)
			line(fmt.Sprintf("concord decode (%d threads, wall)", runtime.GOMAXPROCS(0)), &s.b.DecodeMulti)
			line("concord decode+standardise", &s.b.Standardise)
			line("concord ... reduced-area", s.b.StandardiseReduced)
			line("pydicom decode", s.b.Pydicom)
			line("dcmtk dcm2pnm", s.b.Dcmtk)
			if s.b.SpeedupVsPy > 0 {
				fmt.Fprintf(stdout, "  speed-up over pydicom (per CPU second, 1 thread each): %.2fx\n", s.b.SpeedupVsPy)
				fmt.Fprintf(stdout, "  speed-up over pydicom (wall; a file's decoder may use every core): %.2fx\n", s.b.WallSpeedupVsPy)
			}
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return c.Fail(stderr, err)
	}
	fmt.Fprintln(stdout, string(b))
	return 0
}
