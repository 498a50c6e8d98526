// Command site-agent is what a hospital installs.
//
//	site-agent run --config /etc/concord/agent.yaml   join the consortium
//	site-agent serve --config agent.yaml               serve the approved model (STOW-RS, watched folder → FHIR)
//	site-agent models approve VERSION | list           approve a published version for serving
//	site-agent models approve-code SHA256 | revoke-code  approve a custom PyTorch model's code for training
//	site-agent scan DIR [--json]                        what is there, what cannot be read, and why
//	site-agent dicom export FILE --npy OUT --png OUT     look at one file
//	site-agent deid IN OUT                               write de-identified copies
//	site-agent train --data FILE.npz [--steps N | --epochs N] [--json]  local dry run
//	site-agent privacy [--config agent.yaml] [--json]    the privacy ledger: budget, spent, releases
//	site-agent drift [--config agent.yaml] [--json]      the drift baseline and the last drift report
//	site-agent backup --config agent.yaml --out FILE     a consistent copy of the state (agent running or not)
//	site-agent restore --config agent.yaml FILE          install a backup (agent stopped)
//	site-agent version
//
// The commands follow cmd/internal/cli; agent.yaml is read by load.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/cmd/internal/config"
	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/internal/daemon"
	"github.com/concord-fl/concord/internal/version"
	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/dp"
	siteagent "github.com/concord-fl/concord/site-agent"
)

const intro = "site-agent: Concord's agent for a hospital site."

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--version" {
		args = append([]string{"version"}, args[1:]...)
	}
	return cli.Dispatch("site-agent", intro, commands(), args, stdout, stderr)
}

func commands() []*cli.Command {
	return []*cli.Command{
		cli.Leaf(&cli.Command{Name: "run", Args: "[--config agent.yaml]", Synopsis: "connect to the coordinator and take part in jobs",
			Help: "Connect to the coordinator named in agent.yaml (from the site's startup kit) and take part in jobs\nuntil SIGINT/SIGTERM."}, runAgent),
		cli.Leaf(&cli.Command{Name: "serve", Args: "[--config agent.yaml]", Synopsis: "serve the approved model on new studies (STOW-RS, watched folder) with results to FHIR",
			Help: serveHelp}, serveCmd),
		modelsCommands(),
		cli.Leaf(&cli.Command{Name: "scan", Args: "DIR [--json] [--cache FILE] [--decode] [--secret-file FILE] [--allow-burned-in] [--quiet] | --pacs URL [--config agent.yaml] [--modality M ...] [--body-part P] [--description D] [--from DATE] [--to DATE] [--json] [--quiet]",
			Synopsis: "index a DICOM folder: files, decoded, rejected files and why, counts per class folder",
			Help:     scanHelp}, scan),
		{Name: "dicom", Synopsis: "look at one DICOM file", Help: "site-agent dicom: look at one DICOM file.", Sub: []*cli.Command{
			cli.Leaf(&cli.Command{Name: "export", Args: "FILE [--npy OUT.npy] [--png OUT.png] [--frame N]",
				Synopsis: "decode one file: stored values as .npy, a windowed preview as .png"}, dicomExport)}},
		cli.Leaf(&cli.Command{Name: "deid", Args: "IN OUT [--secret-file FILE] [--allow-burned-in]",
			Synopsis: "write de-identified copies (PS3.15 Annex E basic profile)",
			Help:     "Write de-identified copies of IN (a file or a folder) to OUT. Copies are named by their new UID,\nsince hospital file names often carry identifiers."}, deid),
		cli.Leaf(&cli.Command{Name: "train", Args: "--data FILE.npz [--model cnn] [--steps N | --epochs N] [--json] | --model unet --ct DIR --seg SEG.dcm [--json]",
			Synopsis: "train locally (a dry run before joining a federation)",
			Help:     "Train locally on the train split, select the epoch by validation AUC and report test metrics;\nwith --model unet, train the U-Net on CT slices and their DICOM SEG and report Dice."}, train),
		cli.Leaf(&cli.Command{Name: "privacy", Args: "[--config agent.yaml | --state DIR] [--json]",
			Synopsis: "show the site's privacy ledger: budget, epsilon spent, every release and its receipt",
			Help:     privacyHelp}, privacyCmd),
		cli.Leaf(&cli.Command{Name: "sent", Args: "[--config agent.yaml | --state DIR] [--json]",
			Synopsis: "list everything this site sent that the coordinator confirmed (sizes and SHA-256, never content)",
			Help: "Read the agent's own log of what left the site: every upload the coordinator confirmed, with its\n" +
				"job, round, kind, size, SHA-256 and whether its privacy receipt came back countersigned. It reads\n" +
				"the state folder without changing it; stop a running agent first."}, sentCmd),
		cli.Leaf(&cli.Command{Name: "drift", Args: "[--config agent.yaml | --state DIR] [--json]",
			Synopsis: "show the drift baseline and the last drift report (PSI of arriving images per feature)",
			Help:     driftHelp}, driftCmd),
		cli.Leaf(&cli.Command{Name: "backup", Args: "[--config agent.yaml] --out FILE",
			Synopsis: "write a consistent copy of the agent's state database, while it runs or not", Help: backupHelp}, backupCmd),
		cli.Leaf(&cli.Command{Name: "restore", Args: "[--config agent.yaml] FILE",
			Synopsis: "install a backup as the agent's state database (agent stopped)", Help: restoreHelp}, restoreCmd),
		cli.Version("site-agent", version.Of(siteagent.Version)),
	}
}

// fileConfig is agent.yaml. Relative paths are relative to its folder.
type fileConfig struct {
	// Site, when set, must be the site name in the kit's certificate: the
	// identity comes from the certificate, and a mismatch means the kit was
	// installed on the wrong machine.
	Site        string       `yaml:"site"`
	Coordinator string       `yaml:"coordinator"`
	TLS         pki.TLSFiles `yaml:"tls"`
	Proxy       string       `yaml:"proxy"`
	Data        struct {
		Dir           string   `yaml:"dir"`
		Classes       []string `yaml:"classes"`
		AllowBurnedIn bool     `yaml:"allow_burned_in"`
		// PACS, instead of Dir: the images come from the hospital's PACS.
		PACS    *pacsFileConfig `yaml:"pacs"`
		Layout  string          `yaml:"layout"`  // classes (folder per class, the default) or segmentation
		Segment int             `yaml:"segment"` // segmentation: the DICOM SEG segment number; 0 = all
	} `yaml:"data"`
	StateDir string `yaml:"state_dir"`
	Trainer  struct {
		External string `yaml:"external"` // address of a GPU trainer (loopback or unix socket)
		// Dataset is refused: the agent sends the trainer the job's
		// pipeline output from data: (extrainer.Shards).
		Dataset string `yaml:"dataset"`
		// AllowCPUCustom: custom models may train on an external trainer
		// that reports device cpu (refused by default).
		AllowCPUCustom bool `yaml:"allow_cpu_custom"`
	} `yaml:"trainer"`
	KeyPassphraseFile string `yaml:"key_passphrase_file"`
	// Vault: the site's certificates from Vault's PKI (vault.pki, instead
	// of tls:) and its keys in Vault's KV v2 (vault.kv, instead of
	// key_passphrase_file); deploy/vault/README.md.
	Vault config.Vault `yaml:"vault"`
	// Audit: the site's witness key file and the coordinator's log key it
	// pins, written by concordctl pki issue (privacy/audit).
	Audit pki.KitAudit `yaml:"audit"`
	// Limits bound the models this site trains (limits.go).
	Limits limitsFile `yaml:"limits"`
	// Privacy is the hospital's differential privacy policy.
	Privacy struct {
		// Budget is the record-level (epsilon, delta) the site agrees to
		// spend over all jobs; absent: the agent takes no DP job.
		Budget *struct {
			Epsilon float64 `yaml:"epsilon"`
			Delta   float64 `yaml:"delta"`
		} `yaml:"budget"`
		// RequireDP refuses every job without record-level DP.
		RequireDP bool `yaml:"require_dp"`
		// SiteBudget is the site-level (epsilon, delta) the site agrees to
		// spend on jobs with privacy.level site; absent: it takes none.
		SiteBudget *struct {
			Epsilon float64 `yaml:"epsilon"`
			Delta   float64 `yaml:"delta"`
		} `yaml:"site_budget"`
	} `yaml:"privacy"`
	// Drift watches the images arriving at the hospital (dir, any layout,
	// no labels) against the data the site last trained on.
	Drift struct {
		Dir         string   `yaml:"dir"`
		Interval    duration `yaml:"interval"` // e.g. 1h (default)
		MinExamples int      `yaml:"min_examples"`
	} `yaml:"drift"`
	// Feedback is the folder of clinicians' corrections, one sub-folder per
	// class as under data.dir: counted in drift reports, trained on.
	Feedback struct {
		Dir string `yaml:"dir"`
	} `yaml:"feedback"`
	Log struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
	// MetricsListen is the plain-HTTP management listener: /healthz,
	// /readyz, /metrics, and POST /backup (to this host only). Counts
	// only; bind it to loopback or the management network. Empty: none.
	MetricsListen string `yaml:"metrics_listen"`
	// Serve is `site-agent serve` (serve.go).
	Serve serveFile `yaml:"serve"`
}

func runAgent(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file` (from the startup kit)")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
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
		fmt.Fprintf(stderr, "site-agent: %v\n", err)
		if errors.Is(err, siteagent.ErrPermanent) {
			return exitPermanent
		}
		return 1
	}
	return 0
}

// exitPermanent is the exit status of an agent that stopped on a failure
// restarting cannot fix (a certificate of another consortium, expired or
// revoked): the systemd unit does not restart on it (RestartPreventExitStatus).
const exitPermanent = 78 // EX_CONFIG

// readConfig reads agent.yaml and returns it with a function that makes
// its relative paths relative to its folder.
func readConfig(path string) (fileConfig, func(string) string, error) {
	var fc fileConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, nil, fmt.Errorf("read config: %w (it comes in the site's startup kit)", err)
	}
	if err := config.Decode(data, &fc); err != nil {
		return fc, nil, fmt.Errorf("config %s: %w", path, err)
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	return fc, abs, nil
}

// privacyPolicy converts agent.yaml's privacy section.
func (fc fileConfig) privacyPolicy() (siteagent.PrivacyPolicy, error) {
	p := siteagent.PrivacyPolicy{RequireDP: fc.Privacy.RequireDP}
	if b := fc.Privacy.Budget; b != nil {
		p.Budget = &dp.Budget{Level: dp.Record, Epsilon: b.Epsilon, Delta: b.Delta}
	}
	if b := fc.Privacy.SiteBudget; b != nil {
		p.SiteBudget = &dp.Budget{Level: dp.Site, Epsilon: b.Epsilon, Delta: b.Delta}
	}
	return p, p.Validate()
}

func load(path string) (siteagent.Config, *slog.Logger, func(), error) {
	noop := func() {}
	fc, abs, err := readConfig(path)
	if err != nil {
		return siteagent.Config{}, nil, noop, err
	}
	base := filepath.Dir(path)
	policy, err := fc.privacyPolicy()
	if err != nil {
		return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
	}
	logger, err := daemon.Logger(fc.Log.Format, fc.Log.Level)
	if err != nil {
		return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
	}
	if err := fc.checkVault(); err != nil {
		return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
	}
	if fc.Trainer.AllowCPUCustom && fc.Trainer.External == "" {
		return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: trainer.allow_cpu_custom applies to an external trainer (trainer.external), "+
			"and this site has none: the built-in trainer never runs custom models", path)
	}
	host := fc.Coordinator
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	host = strings.Trim(host, "[]")
	var (
		tc      *tls.Config
		secrets siteagent.SecretStore
		closeFn = noop
	)
	if fc.Vault.Set() {
		if tc, secrets, closeFn, err = fc.fromVault(base, host, logger); err != nil {
			return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if tc == nil {
		if err := checkSite(fc.Site, fc.TLS.Resolve(base)); err != nil {
			closeFn()
			return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
		}
		if tc, err = fc.TLS.Resolve(base).Client(host); err != nil {
			closeFn()
			return siteagent.Config{}, nil, noop, err
		}
	}
	cfg, err := fc.runtime(abs, tc, secrets, policy, logger)
	if err != nil {
		closeFn()
		return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
	}
	if fc.Trainer.Dataset != "" {
		closeFn()
		return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: trainer.dataset is no longer read: the agent runs the job's pipeline on data: "+
			"and sends the external trainer the result as shards; remove trainer.dataset", path)
	}
	if fc.Trainer.External != "" {
		t, err := siteagent.NewExternalTrainer(context.Background(), extrainer.Config{Address: fc.Trainer.External, Logger: logger})
		if err != nil {
			closeFn()
			return siteagent.Config{}, nil, noop, fmt.Errorf("external trainer: %w", err)
		}
		t.AllowCPUCustom = fc.Trainer.AllowCPUCustom
		stopVault := closeFn
		cfg.Trainer, closeFn = t, func() { t.Close(); stopVault() }
	}
	if pc := fc.Data.PACS; pc != nil {
		// Opened last: an error before it leaves nothing to close.
		p, err := openPACS(fc, pc, abs, cfg.StateDir, cfg.Feedback.Dir, logger)
		if err != nil {
			closeFn()
			return siteagent.Config{}, nil, noop, fmt.Errorf("config %s: %w", path, err)
		}
		prev := closeFn
		cfg.Data, closeFn = p, func() { p.Close(); prev() }
	}
	return cfg, logger, closeFn, nil
}

// runtime converts the rest of agent.yaml, given the TLS configuration and
// secret store already built.
func (fc fileConfig) runtime(abs func(string) string, tc *tls.Config, secrets siteagent.SecretStore, policy siteagent.PrivacyPolicy, logger *slog.Logger) (siteagent.Config, error) {
	if err := checkListen(fc.MetricsListen); err != nil {
		return siteagent.Config{}, err
	}
	drift, feedback, err := fc.driftConfig(abs)
	if err != nil {
		return siteagent.Config{}, err
	}
	data, err := fc.dataSource(abs, logger, feedback.Dir)
	if err != nil {
		return siteagent.Config{}, err
	}
	limits, err := fc.modelLimits(machineMemory())
	if err != nil {
		return siteagent.Config{}, err
	}
	cfg := siteagent.Config{Coordinator: fc.Coordinator, TLS: tc, StateDir: abs(fc.StateDir), Logger: logger, Privacy: policy,
		Data: data, Drift: drift, Feedback: feedback, MetricsListen: fc.MetricsListen, ModelLimits: limits}
	if fc.Proxy != "" {
		u, err := url.Parse(fc.Proxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return siteagent.Config{}, fmt.Errorf("proxy %q: give http://host:port or https://host:port", fc.Proxy)
		}
		cfg.Proxy = u
	}
	cfg.Secrets = secrets
	switch {
	case secrets != nil: // checkVault refused a passphrase beside vault.kv
	case fc.KeyPassphraseFile != "":
		if cfg.KeyPassphrase, err = os.ReadFile(abs(fc.KeyPassphraseFile)); err != nil {
			return siteagent.Config{}, fmt.Errorf("key passphrase: %w", err)
		}
	case os.Getenv("CONCORD_KEY_PASSPHRASE") != "":
		cfg.KeyPassphrase = []byte(os.Getenv("CONCORD_KEY_PASSPHRASE"))
	default:
		return siteagent.Config{}, errors.New("set key_passphrase_file in the config or CONCORD_KEY_PASSPHRASE: the site's secret keys are stored encrypted with it")
	}
	if fc.Audit.WitnessKey != "" {
		if cfg.WitnessKey, err = audit.ReadKeyFile(abs(fc.Audit.WitnessKey)); err != nil {
			return siteagent.Config{}, fmt.Errorf("audit.witness_key: %w", err)
		}
	}
	cfg.AuditOrigin, cfg.AuditLogKey = fc.Audit.Origin, fc.Audit.LogKey
	return cfg, nil
}

// checkSite compares agent.yaml's site: with the identity in the kit's
// certificate, which is what the coordinator believes. An empty site: is
// accepted: the certificate alone names the site.
func checkSite(site string, files pki.TLSFiles) error {
	if site == "" {
		return nil
	}
	id, err := pki.IdentityFromCertFile(files.Cert)
	if err != nil {
		return fmt.Errorf("site %q: cannot read the kit's certificate to check it: %w", site, err)
	}
	if id.Role != pki.RoleSite {
		return fmt.Errorf("the certificate %s belongs to %s, not to a site: install the site's own kit", files.Cert, id)
	}
	if id.Name != site {
		return fmt.Errorf("site: %q, but the certificate %s is site %q's: this kit was made for another site (check which kit is installed here), or remove the site: line", site, files.Cert, id.Name)
	}
	return nil
}
