package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/privacy/audit"
)

// defaultTrustFile is where `concordctl pki` keeps the consortium's audit
// trust file, relative to the folder the admin works in.
var defaultTrustFile = filepath.Join("ca", AuditTrustFile)

var errNoTrust = errors.New("no trust file")

// findTrust reads the trust file named, or else the default one; without
// either it returns errNoTrust, with what to do.
func findTrust(name string) (*audit.Trust, string, error) {
	path := name
	if path == "" {
		path = defaultTrustFile
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("%w: pass --trust FILE, the consortium's %s (the CA folder keeps it as %s)", errNoTrust, AuditTrustFile, defaultTrustFile)
		}
	}
	t, err := audit.ReadTrustFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("trust file: %w", err)
	}
	return t, path, nil
}

// verifyResult is the JSON of `models verify --json`.
type verifyResult struct {
	Valid         bool           `json:"valid"`
	Dir           string         `json:"dir"`
	File          string         `json:"file,omitempty"` // the file to blame when invalid
	Error         string         `json:"error,omitempty"`
	Version       string         `json:"version,omitempty"`
	Status        string         `json:"status,omitempty"`
	DeviceUID     string         `json:"device_uid,omitempty"`
	WeightsSHA256 string         `json:"weights_sha256,omitempty"`
	Gate          *registry.Gate `json:"gate,omitempty"`
}

func (g *globals) modelsVerify() *cli.Command {
	return cli.Leaf(&cli.Command{Name: "verify", Args: "DIR [--trust FILE] [--json]",
		Synopsis: "check a downloaded version offline: signature, weights, layout, model card",
		Help: `Verify a model version's directory (from concordctl models download) without any network:
the manifest's signature against the trust file's log key, the weights' SHA-256 and size,
the layout's hash, the device UID, that card.html and card.json are what the manifest
renders, and SHA256SUMS.

--trust names the consortium's trust file (default ` + defaultTrustFile + `).

Exit status 0: valid. 1: invalid, with the file at fault named. 2: usage.`},
		func(c *cli.Command, args []string, stdout, stderr io.Writer) int {
			fset := c.NewFlagSet(stderr)
			trustFile := fset.String("trust", "", "the consortium's audit trust `FILE`")
			asJSON := fset.Bool("json", g.json, "print the result as JSON")
			pos, code, ok := c.Parse(fset, args, stdout, stderr)
			if !ok {
				return code
			}
			switch {
			case len(pos) == 0:
				return c.Usagef(stderr, "missing the version's DIR")
			case len(pos) > 1:
				return c.Usagef(stderr, "unexpected argument %q", pos[1])
			}
			dir := pos[0]
			trust, _, err := findTrust(*trustFile)
			if err != nil {
				return c.Fail(stderr, err)
			}
			m, err := registry.VerifyDir(dir, trust)
			if *asJSON {
				res := verifyResult{Valid: err == nil, Dir: dir}
				if err != nil {
					res.Error = err.Error()
					var fe *registry.FileError
					if errors.As(err, &fe) {
						res.File = fe.File
					}
				} else {
					res.Version, res.Status, res.DeviceUID, res.WeightsSHA256, res.Gate = m.Version, m.Status, m.DeviceUID, m.WeightsSHA256, &m.Gate
				}
				if werr := writeJSON(stdout, res); werr != nil {
					return c.Fail(stderr, werr)
				}
			}
			if err != nil {
				fmt.Fprintf(stderr, "%s: %s: INVALID: %v\n", c.Path(), dir, err)
				return 1
			}
			if !*asJSON {
				fmt.Fprintf(stdout, "%s: valid: model %s (%s), device uid %s, weights sha256 %s, signed by a log key of the trust file; gate %s\n",
					dir, m.Version, m.Status, m.DeviceUID, m.WeightsSHA256, m.Gate.State)
			}
			return 0
		})
}

func (g *globals) modelsDiff() *cli.Command {
	return cli.Leaf(&cli.Command{Name: "diff", Args: "A B [--trust FILE] [--json]",
		Synopsis: "compare two versions: metrics per site, lineage, change per layer",
		Help: `Compare two model versions: validation metrics side by side per site, what differs in
their lineage, and how far each named tensor moved (L2 norm of the difference, and relative
to A's). A and B are version directories (from concordctl models download), verified first;
a name that is not a directory is downloaded from the coordinator (--config) into a
temporary directory. Versions with different weight layouts are refused: their tensors do
not correspond.

--trust names the consortium's trust file (default ` + defaultTrustFile + `).`},
		func(c *cli.Command, args []string, stdout, stderr io.Writer) int {
			fset := c.NewFlagSet(stderr)
			cf := g.clientFlags(fset)
			trustFile := fset.String("trust", "", "the consortium's audit trust `FILE`")
			pos, code, ok := c.Parse(fset, args, stdout, stderr)
			if !ok {
				return code
			}
			switch {
			case len(pos) < 2:
				return c.Usagef(stderr, "want two versions, A and B")
			case len(pos) > 2:
				return c.Usagef(stderr, "unexpected argument %q", pos[2])
			}
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			rep, err := diffVersions(ctx, pos[0], pos[1], *cf.config, *trustFile)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %s\n", c.Path(), explain(err))
				return 1
			}
			if *cf.json {
				err = writeJSON(stdout, rep)
			} else {
				err = rep.WriteText(stdout)
			}
			if err != nil {
				return c.Fail(stderr, err)
			}
			return 0
		})
}

// modelDir is one side of a diff, read from a verified directory.
type modelDir struct {
	m       registry.Manifest
	weights []float32
	layout  []byte
}

func diffVersions(ctx context.Context, a, b, config, trustFile string) (registry.DiffReport, error) {
	trust, _, err := findTrust(trustFile)
	if err != nil {
		return registry.DiffReport{}, err
	}
	var cl *client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	var vs [2]modelDir
	for i, name := range []string{a, b} {
		dir := name
		if st, err := os.Stat(name); err != nil || !st.IsDir() {
			if cl == nil {
				if cl, err = connect(config); err != nil {
					return registry.DiffReport{}, fmt.Errorf("%s is not a directory, and downloading it needs the coordinator: %w", name, err)
				}
			}
			tmp, err := os.MkdirTemp("", "concord-model-")
			if err != nil {
				return registry.DiffReport{}, err
			}
			defer os.RemoveAll(tmp)
			dir = filepath.Join(tmp, "version")
			if _, err := download(ctx, cl.admin, name, dir, trustFile); err != nil {
				return registry.DiffReport{}, err
			}
		}
		if vs[i], err = readVersion(dir, trust); err != nil {
			return registry.DiffReport{}, err
		}
	}
	return registry.Diff(vs[0].m, vs[1].m, vs[0].weights, vs[1].weights, vs[0].layout)
}

func readVersion(dir string, trust *audit.Trust) (modelDir, error) {
	m, err := registry.VerifyDir(dir, trust)
	if err != nil {
		return modelDir{}, fmt.Errorf("%s: %w", dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, registry.FileWeights))
	if err != nil {
		return modelDir{}, err
	}
	w, err := registry.DecodeWeights(raw)
	if err != nil {
		return modelDir{}, err
	}
	layout, err := os.ReadFile(filepath.Join(dir, registry.FileLayout))
	if err != nil {
		return modelDir{}, err
	}
	return modelDir{m: m, weights: w, layout: layout}, nil
}
