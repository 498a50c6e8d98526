// Command concord-image builds the OCI images of the Concord daemons from
// the static binaries of `make build`, without a container daemon:
//
//	concord-image --bin bin --version v1.2.0 --out dist/images
//
// writes dist/images/concord-coordinator-v1.2.0.oci.tar and
// dist/images/concord-site-agent-v1.2.0.oci.tar (oci-archive; load with
// `podman load -i FILE`) and prints each image's digest.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/concord-fl/concord/tools/ociimage"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("concord-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "folder with the static binaries (make build)")
	version := fs.String("version", "", "release version: image tag and label (required)")
	revision := fs.String("revision", "", "git commit for the revision label")
	ca := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle copied into the images")
	out := fs.String("out", "dist/images", "output folder")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "file and creation time, seconds since 1970 (reproducible builds); default 0")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "concord-image: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	created := time.Unix(0, 0).UTC()
	if *epoch != "" {
		sec, err := strconv.ParseInt(*epoch, 10, 64)
		if err != nil || sec < 0 {
			fmt.Fprintf(stderr, "concord-image: --source-date-epoch %q: want seconds since 1970\n", *epoch)
			return 2
		}
		created = time.Unix(sec, 0).UTC()
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(stderr, "concord-image: %v\n", err)
		return 1
	}
	for _, s := range ociimage.Daemons(*bin, *ca, *version, *revision, created) {
		img, err := ociimage.Build(s)
		if err != nil {
			fmt.Fprintf(stderr, "concord-image: %v\n", err)
			return 1
		}
		file := filepath.Join(*out, ociimage.ArchiveName(s))
		if err := ociimage.WriteArchive(file, img, ociimage.Ref(s), created); err != nil {
			fmt.Fprintf(stderr, "concord-image: %v\n", err)
			return 1
		}
		d, err := img.Digest()
		if err != nil {
			fmt.Fprintf(stderr, "concord-image: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s %s\n", file, ociimage.Ref(s), d)
	}
	return 0
}
