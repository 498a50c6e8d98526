// Command coordinator runs Concord's coordinator.
//
//	coordinator --config /etc/concord/coordinator.yaml
//	coordinator --version
//	coordinator --config coordinator.yaml --restore FILE   (stopped: install a backup)
//
// SIGINT or SIGTERM stop it gracefully within a bound; a second signal
// stops it at once. Restarting it resumes every unfinished job.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/cmd/internal/config"
	"github.com/concord-fl/concord/coordinator"
	"github.com/concord-fl/concord/internal/bytesize"
	"github.com/concord-fl/concord/internal/daemon"
	"github.com/concord-fl/concord/internal/vaultauth"
	"github.com/concord-fl/concord/internal/version"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
)

// fileConfig is coordinator.yaml. Relative paths are relative to its folder.
type fileConfig struct {
	Listen    string       `yaml:"listen"`
	TLS       pki.TLSFiles `yaml:"tls"`
	Inventory string       `yaml:"inventory"`
	// Vault, when its pki is set, replaces tls and inventory: the
	// coordinator's certificate comes from Vault's PKI, clients'
	// certificates must chain to it and are looked up there.
	Vault    config.Vault `yaml:"vault"`
	StateDir string       `yaml:"state_dir"`
	Log      struct {
		Format string `yaml:"format"` // json (default) or text
		Level  string `yaml:"level"`  // debug, info (default), warn, error
	} `yaml:"log"`
	ShutdownGrace string `yaml:"shutdown_grace"`
	// MetricsListen serves /metrics (Prometheus text), /healthz and
	// /readyz on plain HTTP, e.g. 127.0.0.1:9090; empty disables it.
	MetricsListen string `yaml:"metrics_listen"`
	// Audit names the audit log in its checkpoints (origin) and, optionally,
	// the file of the coordinator's audit key (default audit-key.pem in
	// state_dir, made on first start).
	Audit struct {
		Origin string `yaml:"origin"`
		Key    string `yaml:"key"`
	} `yaml:"audit"`
	// Consortium is the consortium's name in compliance reports.
	Consortium string `yaml:"consortium"`
	// Limits bound every submitted job; 0 or absent keeps jobspec's default.
	Limits struct {
		MaxModelParams   uint64 `yaml:"max_model_params"`
		MaxSites         int    `yaml:"max_sites"`
		MaxRounds        uint32 `yaml:"max_rounds"`
		MaxRoundDeadline string `yaml:"max_round_deadline"` // e.g. 24h
		// MaxTrainingMemory bounds the memory training a job's model takes
		// at its batch size, e.g. 16GiB.
		MaxTrainingMemory   bytesize.Size `yaml:"max_training_memory"`
		MaxGFLOPsPerExample float64       `yaml:"max_gflops_per_example"`
	} `yaml:"limits"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var command = &cli.Command{Name: "coordinator", Args: "[--config FILE] [--restore BACKUP] [--version]",
	Help: "Runs the Concord coordinator until SIGINT/SIGTERM (a second signal stops it at once).\n" +
		"The config file is written by concordctl pki issue --coordinator."}

func run(args []string, stdout, stderr io.Writer) int {
	c := command
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "coordinator.yaml", "coordinator config `file`")
	showVersion := fs.Bool("version", false, "print the version and exit")
	restoreFrom := fs.String("restore", "", "with the coordinator stopped: verify the backup `FILE` (concordctl backup) and install it as the state database, then exit")
	acceptBroken := fs.Bool("accept-broken-audit-log", false, "start even if the audit log fails verification (recorded in the log; keep the database for investigation)")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	if *showVersion {
		fmt.Fprintln(stdout, "coordinator", version.Of(coordinator.Version))
		return 0
	}
	if *restoreFrom != "" {
		return restore(*configPath, *restoreFrom, stdout, stderr)
	}
	cfg, logger, closeFn, err := load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator: %v\n", err)
		return 1
	}
	defer closeFn()
	cfg.AcceptBrokenAuditLog = *acceptBroken
	co, err := coordinator.New(cfg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := co.Run(daemon.StopOnSignal(logger)); err != nil {
		logger.Error("coordinator stopped with an error", "err", err)
		return 1
	}
	return 0
}

// readConfig decodes coordinator.yaml, refusing unknown keys with their line.
func readConfig(path string) (fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("read config: %w (create one with concordctl pki issue --coordinator)", err)
	}
	var fc fileConfig
	if err := config.Decode(data, &fc); err != nil {
		return fileConfig{}, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

// limits converts the limits section; zero fields keep jobspec's defaults.
func (fc fileConfig) limits() (jobspec.Limits, error) {
	l := fc.Limits
	lim := jobspec.Limits{MaxModelParams: l.MaxModelParams, MaxSites: l.MaxSites, MaxRounds: l.MaxRounds,
		MaxTrainingBytes: int64(l.MaxTrainingMemory), MaxFLOPsPerExample: int64(l.MaxGFLOPsPerExample * 1e9)}
	if l.MaxSites < 0 {
		return lim, errors.New("config: limits.max_sites must not be negative")
	}
	if g := l.MaxGFLOPsPerExample; g < 0 || g > 1e6 || math.IsNaN(g) {
		return lim, fmt.Errorf("config: limits.max_gflops_per_example %g is not in (0, 1000000]", g)
	}
	if d := l.MaxRoundDeadline; d != "" {
		var err error
		if lim.MaxRoundDeadline, err = time.ParseDuration(d); err != nil || lim.MaxRoundDeadline <= 0 {
			return lim, fmt.Errorf("config: limits.max_round_deadline %q is not a positive duration (write e.g. 24h)", d)
		}
	}
	return lim, nil
}

// load converts coordinator.yaml; closeFn stops what it started (the
// Vault certificate renewal).
func load(path string) (cfg coordinator.Config, logger *slog.Logger, closeFn func(), err error) {
	closeFn = func() {}
	cfg, logger, stop, err := loadConfig(path)
	if stop != nil {
		closeFn = stop
		if err != nil {
			stop()
		}
	}
	return cfg, logger, closeFn, err
}

func loadConfig(path string) (coordinator.Config, *slog.Logger, func(), error) {
	fc, err := readConfig(path)
	if err != nil {
		return coordinator.Config{}, nil, nil, err
	}
	lim, err := fc.limits()
	if err != nil {
		return coordinator.Config{}, nil, nil, err
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if err := fc.Vault.Check(pki.RoleCoordinator, fc.TLS); err != nil {
		return coordinator.Config{}, nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	logger, err := daemon.Logger(fc.Log.Format, fc.Log.Level)
	if err != nil {
		return coordinator.Config{}, nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	grace := 10 * time.Second
	if fc.ShutdownGrace != "" {
		if grace, err = time.ParseDuration(fc.ShutdownGrace); err != nil {
			return coordinator.Config{}, nil, nil, fmt.Errorf("config shutdown_grace: %w", err)
		}
	}
	stateDir := abs(fc.StateDir)
	if stateDir == "" {
		return coordinator.Config{}, nil, nil, errors.New("config: state_dir is required")
	}
	tlsCfg, inv, maxAge, stop, err := serverTLS(fc, base, abs(fc.Inventory), logger)
	if err != nil {
		return coordinator.Config{}, nil, nil, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return coordinator.Config{}, nil, stop, err
	}
	var auditKey *audit.Key
	if fc.Audit.Key != "" {
		if auditKey, err = audit.ReadKeyFile(abs(fc.Audit.Key)); err != nil {
			return coordinator.Config{}, nil, stop, fmt.Errorf("config: audit.key: %w", err)
		}
	}
	listen := fc.Listen
	if listen == "" {
		listen = fmt.Sprintf(":%d", pki.DefaultPort)
	}
	return coordinator.Config{Listen: listen, TLS: tlsCfg, Inventory: inv, StatePath: filepath.Join(stateDir, "coordinator.db"),
		Logger: logger, ShutdownGrace: grace, MetricsListen: fc.MetricsListen, Limits: lim,
		AuditOrigin: fc.Audit.Origin, AuditKey: auditKey, Consortium: fc.Consortium, MaxConnectionAge: maxAge}, logger, stop, nil
}

// serverTLS is the coordinator's TLS and inventory: from the tls: files
// and the inventory file, or, with vault.pki, from Vault. stop ends the
// certificate renewal; maxAge is the gRPC MaxConnectionAge that makes
// clients reconnect with their renewed certificates.
func serverTLS(fc fileConfig, base, invPath string, logger *slog.Logger) (*tls.Config, pki.InventorySource, time.Duration, func(), error) {
	if !fc.Vault.UsesPKI() {
		tlsCfg, err := fc.TLS.Resolve(base).Server()
		if err != nil {
			return nil, nil, 0, nil, err
		}
		inv, err := pki.WatchInventory(invPath, logger)
		if err != nil {
			return nil, nil, 0, nil, fmt.Errorf("inventory: %w", err)
		}
		return tlsCfg, inv, 0, nil, nil
	}
	if invPath != "" {
		return nil, nil, 0, nil, errors.New("inventory lists the kits of the consortium's file CA, which a coordinator with vault.pki does not trust (clients' certificates come from Vault): remove inventory or vault.pki")
	}
	ctx, cancel := context.WithCancel(context.Background())
	vc, err := fc.Vault.Dial(ctx, base, logger)
	if err != nil {
		cancel()
		return nil, nil, 0, nil, err
	}
	stop := func() { cancel(); vc.Close() }
	req := fc.Vault.CertRequest(pki.RoleCoordinator)
	certs, err := vaultauth.StartCerts(ctx, vc, req, nil)
	if err != nil {
		stop()
		return nil, nil, 0, nil, err
	}
	return certs.ServerTLS(), vaultauth.NewInventory(vc, req.Mount, nil, 0), vaultauth.MaxConnectionAge(req.TTL), stop, nil
}
