// Command concord-chart lints and renders Concord's Helm charts with helm's
// Go packages, so CI needs no helm binary:
//
//	concord-chart lint deploy/helm/concord-coordinator deploy/helm/concord-site-agent
//
// Each chart is linted (strict) and rendered with every values file in its
// ci/ folder, and the rendered manifests are checked (chartcheck.Check).
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/concord-fl/concord/tools/chartcheck"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "lint" {
		fmt.Fprintln(stderr, "usage: concord-chart lint CHART_DIR...")
		return 2
	}
	failed := false
	for _, dir := range args[1:] {
		if err := lint(dir, stdout); err != nil {
			fmt.Fprintf(stderr, "concord-chart: %v\n", err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

func lint(dir string, stdout io.Writer) error {
	files, err := chartcheck.CIValues(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		vals, err := chartcheck.ValuesFile(f)
		if err != nil {
			return err
		}
		if err := chartcheck.Lint(dir, vals); err != nil {
			return err
		}
		objs, err := chartcheck.Render(dir, vals)
		if err != nil {
			return err
		}
		if err := chartcheck.Check(objs); err != nil {
			return fmt.Errorf("%s with %s:\n%w", dir, filepath.Base(f), err)
		}
		kinds := chartcheck.Kinds(objs)
		names := make([]string, 0, len(kinds))
		for k, n := range kinds {
			names = append(names, fmt.Sprintf("%s×%d", k, n))
		}
		sort.Strings(names)
		fmt.Fprintf(stdout, "%s with ci/%s: lint clean, rendered %v\n", filepath.Base(dir), filepath.Base(f), names)
	}
	return nil
}
