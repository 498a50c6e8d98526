// Command site-agent is what a hospital installs.
//
//	site-agent run --config /etc/concord/agent.yaml   join the consortium
//	site-agent scan DIR [--json]                        what is there, what cannot be read, and why
//	site-agent dicom export FILE --npy OUT --png OUT     look at one file
//	site-agent deid IN OUT                               write de-identified copies
//	site-agent train --data FILE.npz --model cnn --epochs N [--json]   local dry run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/imaging/imagingcmd"
	"github.com/concord-fl/concord/internal/daemon"
	"github.com/concord-fl/concord/learning/learncmd"
	"github.com/concord-fl/concord/pki"
	siteagent "github.com/concord-fl/concord/site-agent"
)

const usage = `site-agent: Concord's agent for a hospital site.

usage:
  site-agent run --config agent.yaml        connect to the coordinator and take part in jobs
  site-agent scan DIR [--json]              index a DICOM folder: files, decoded, rejected by reason
  site-agent dicom export FILE --npy OUT [--png OUT]   decode one file (stored values) / windowed preview
  site-agent deid IN OUT                    write de-identified copies (PS3.15 Annex E basic profile)
  site-agent train --data FILE.npz --model cnn --epochs N [--json]   train locally (dry run)
  site-agent version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runAgent(args[1:], stderr)
	case "scan":
		return imagingcmd.Scan(args[1:], stdout, stderr)
	case "dicom":
		if len(args) < 2 || args[1] != "export" {
			fmt.Fprint(stderr, "usage: site-agent dicom export FILE --npy OUT [--png OUT]\n")
			return 2
		}
		return imagingcmd.DicomExport(args[2:], stdout, stderr)
	case "deid":
		return imagingcmd.Deid(args[1:], stdout, stderr)
	case "train":
		return learncmd.Train(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "site-agent", siteagent.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "site-agent: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// fileConfig is agent.yaml. Relative paths are relative to its folder.
type fileConfig struct {
	Site        string       `yaml:"site"`
	Coordinator string       `yaml:"coordinator"`
	TLS         pki.TLSFiles `yaml:"tls"`
	Proxy       string       `yaml:"proxy"`
	Data        struct {
		Dir           string   `yaml:"dir"`
		Classes       []string `yaml:"classes"`
		AllowBurnedIn bool     `yaml:"allow_burned_in"`
	} `yaml:"data"`
	StateDir string `yaml:"state_dir"`
	Trainer  struct {
		External string `yaml:"external"` // address of a GPU trainer (loopback or unix socket)
		Dataset  string `yaml:"dataset"`  // the dataset file on the trainer's node
	} `yaml:"trainer"`
	KeyPassphraseFile string `yaml:"key_passphrase_file"`
	Log               struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
}

func runAgent(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("site-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config file (from the startup kit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, logger, closeFn, err := load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "site-agent: %v\n", err)
		return 1
	}
	defer closeFn()
	a, err := siteagent.New(cfg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := a.Run(daemon.StopOnSignal(logger)); err != nil {
		logger.Error("agent stopped with an error", "err", err)
		return 1
	}
	return 0
}

func load(path string) (siteagent.Config, *slog.Logger, func(), error) {
	noop := func() {}
	data, err := os.ReadFile(path)
	if err != nil {
		return siteagent.Config{}, nil, noop, fmt.Errorf("read config: %w (it comes in the site's startup kit)", err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	logger := daemon.Logger(fc.Log.Format, fc.Log.Level)
	host := fc.Coordinator
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	tc, err := fc.TLS.Resolve(base).Client(strings.Trim(host, "[]"))
	if err != nil {
		return siteagent.Config{}, nil, noop, err
	}
	cfg := siteagent.Config{Coordinator: fc.Coordinator, TLS: tc, StateDir: abs(fc.StateDir), Logger: logger,
		Data: &siteagent.DICOMFolder{Dir: abs(fc.Data.Dir), Classes: fc.Data.Classes, AllowBurnedIn: fc.Data.AllowBurnedIn, Logger: logger}}
	if fc.Proxy != "" {
		u, err := url.Parse(fc.Proxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return siteagent.Config{}, nil, noop, fmt.Errorf("proxy %q: give http://host:port or https://host:port", fc.Proxy)
		}
		cfg.Proxy = u
	}
	if fc.KeyPassphraseFile != "" {
		if cfg.KeyPassphrase, err = os.ReadFile(abs(fc.KeyPassphraseFile)); err != nil {
			return siteagent.Config{}, nil, noop, fmt.Errorf("key passphrase: %w", err)
		}
	} else if p := os.Getenv("CONCORD_KEY_PASSPHRASE"); p != "" {
		cfg.KeyPassphrase = []byte(p)
	} else {
		return siteagent.Config{}, nil, noop, errors.New("set key_passphrase_file in the config or CONCORD_KEY_PASSPHRASE: the site's secret keys are stored encrypted with it")
	}
	closeFn := noop
	if fc.Trainer.External != "" {
		t, err := siteagent.NewExternalTrainer(context.Background(), extrainer.Config{Address: fc.Trainer.External, Logger: logger}, fc.Trainer.Dataset)
		if err != nil {
			return siteagent.Config{}, nil, noop, fmt.Errorf("external trainer: %w", err)
		}
		cfg.Trainer, closeFn = t, func() { t.Close() }
	}
	return cfg, logger, closeFn, nil
}
