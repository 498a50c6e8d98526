// Command coordinator runs Concord's coordinator.
//
//	coordinator --config /etc/concord/coordinator.yaml
//
// SIGINT or SIGTERM stop it gracefully within a bound; a second signal
// stops it at once. Restarting it resumes every unfinished job.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/coordinator"
	"github.com/concord-fl/concord/internal/daemon"
	"github.com/concord-fl/concord/pki"
)

type fileConfig struct {
	Listen    string       `yaml:"listen"`
	TLS       pki.TLSFiles `yaml:"tls"`
	Inventory string       `yaml:"inventory"`
	StateDir  string       `yaml:"state_dir"`
	Log       struct {
		Format string `yaml:"format"` // json (default) or text
		Level  string `yaml:"level"`
	} `yaml:"log"`
	ShutdownGrace string `yaml:"shutdown_grace"`
	// MetricsListen serves /metrics (Prometheus text) on plain HTTP, e.g.
	// 127.0.0.1:9090; empty disables it.
	MetricsListen string `yaml:"metrics_listen"`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	configPath := fs.String("config", "coordinator.yaml", "coordinator config file (written by concordctl pki issue --coordinator)")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: coordinator [--config FILE]\n\nRuns the Concord coordinator until SIGINT/SIGTERM.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println("coordinator", coordinator.Version)
		return 0
	}
	cfg, logger, err := load(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "coordinator: %v\n", err)
		return 1
	}
	c, err := coordinator.New(cfg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := c.Run(daemon.StopOnSignal(logger)); err != nil {
		logger.Error("coordinator stopped with an error", "err", err)
		return 1
	}
	return 0
}

func load(path string) (coordinator.Config, *slog.Logger, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return coordinator.Config{}, nil, fmt.Errorf("read config: %w (create one with concordctl pki issue --coordinator)", err)
	}
	var fc fileConfig
	if err := yaml.Unmarshal(data, &fc); err != nil {
		return coordinator.Config{}, nil, fmt.Errorf("config %s: %w", path, err)
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	logger := daemon.Logger(fc.Log.Format, fc.Log.Level)
	tlsCfg, err := fc.TLS.Resolve(base).Server()
	if err != nil {
		return coordinator.Config{}, nil, err
	}
	inv, err := pki.WatchInventory(abs(fc.Inventory), logger)
	if err != nil {
		return coordinator.Config{}, nil, fmt.Errorf("inventory: %w", err)
	}
	stateDir := abs(fc.StateDir)
	if stateDir == "" {
		return coordinator.Config{}, nil, errors.New("config: state_dir is required")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return coordinator.Config{}, nil, err
	}
	grace := 10 * time.Second
	if fc.ShutdownGrace != "" {
		if grace, err = time.ParseDuration(fc.ShutdownGrace); err != nil {
			return coordinator.Config{}, nil, fmt.Errorf("config shutdown_grace: %w", err)
		}
	}
	listen := fc.Listen
	if listen == "" {
		listen = fmt.Sprintf(":%d", pki.DefaultPort)
	}
	return coordinator.Config{Listen: listen, TLS: tlsCfg, Inventory: inv, StatePath: filepath.Join(stateDir, "coordinator.db"),
		Logger: logger, ShutdownGrace: grace, MetricsListen: fc.MetricsListen}, logger, nil
}
