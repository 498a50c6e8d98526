package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/internal/daemon"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/serving"
	"github.com/concord-fl/concord/serving/fhirr4"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// serveFile is agent.yaml's serve: block.
type serveFile struct {
	// Listen is the address of STOW-RS (/dicomweb/studies), POST /feedback
	// and /metrics; plain HTTP, for the hospital network only.
	Listen        string   `yaml:"listen"`
	WatchDir      string   `yaml:"watch_dir"`
	WatchInterval duration `yaml:"watch_interval"`
	// FHIRBase is the FHIR R4 endpoint results are delivered to.
	FHIRBase        string `yaml:"fhir_base"`
	PatientIDSystem string `yaml:"patient_id_system"`
	// ModelsDir holds one folder per version, as `concordctl models
	// download VERSION --out MODELS_DIR/VERSION` writes it.
	ModelsDir string `yaml:"models_dir"`
	// Trust is the consortium's audit trust file; empty: the coordinator's
	// log key pinned in audit.log_key (from the kit).
	Trust        string   `yaml:"trust"`
	Publisher    string   `yaml:"publisher"`
	MaxRequestMB int      `yaml:"max_request_mb"`
	MaxInstances int      `yaml:"max_instances"`
	RetryMin     duration `yaml:"retry_min"`
	RetryMax     duration `yaml:"retry_max"`
	FHIRTimeout  duration `yaml:"fhir_timeout"`
	// KeepStudies is how long served studies are kept for feedback.
	KeepStudies duration `yaml:"keep_studies"`
	// SegmentLabel names what a segmentation model segments, in its DICOM
	// SEG and FHIR results (default: the model's name).
	SegmentLabel string `yaml:"segment_label"`
	// SEGDICOMweb is the PACS's DICOMweb root each DICOM SEG is stored in
	// by STOW-RS (segmentation versions; empty: kept in the state folder
	// only).
	SEGDICOMweb string `yaml:"seg_dicomweb"`
}

// serveSetup is agent.yaml resolved for the serving commands.
type serveSetup struct {
	cfg       serving.Config
	stateDir  string
	modelsDir string
	trust     *audit.Trust
	fhirBase  string
	timeout   time.Duration
}

// serveConfig converts and checks agent.yaml for serving; forApprove
// needs only the state, models and trust.
func serveConfig(path string, forApprove bool) (serveSetup, error) {
	fc, abs, err := readConfig(path)
	if err != nil {
		return serveSetup{}, err
	}
	sf := fc.Serve
	bad := func(format string, args ...any) (serveSetup, error) {
		return serveSetup{}, fmt.Errorf("config %s: serve.%s", path, fmt.Sprintf(format, args...))
	}
	st := serveSetup{stateDir: abs(fc.StateDir), modelsDir: abs(sf.ModelsDir)}
	if fc.StateDir == "" {
		return serveSetup{}, fmt.Errorf("config %s has no state_dir", path)
	}
	if sf.ModelsDir == "" {
		return bad("models_dir is not set: name the folder `concordctl models download VERSION --out DIR/VERSION` fills")
	}
	switch {
	case sf.Trust != "":
		if st.trust, err = audit.ReadTrustFile(abs(sf.Trust)); err != nil {
			return bad("trust: %v", err)
		}
	case fc.Audit.LogKey != "":
		if st.trust, err = audit.NewTrust(fc.Audit.Origin, []string{fc.Audit.LogKey}, nil, nil, 0); err != nil {
			return serveSetup{}, fmt.Errorf("config %s: audit.log_key and audit.origin: %w", path, err)
		}
	default:
		return bad("trust is not set and the kit pins no audit.log_key: without the consortium's key no version can be verified")
	}
	if forApprove {
		return st, nil
	}
	if sf.Listen == "" && sf.WatchDir == "" {
		return bad("listen and watch_dir are both empty: set at least one, or studies have no way in")
	}
	if err := checkListen(sf.Listen); err != nil {
		return bad("%v", strings.TrimPrefix(err.Error(), "metrics_listen "))
	}
	if sf.Listen != "" && sf.Listen == fc.MetricsListen {
		return bad("listen %s is also metrics_listen: give serving its own address", sf.Listen)
	}
	u, err := url.Parse(sf.FHIRBase)
	if sf.FHIRBase == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("fhir_base %q: give the FHIR R4 endpoint's base URL, https://host/path", sf.FHIRBase)
	}
	if sf.PatientIDSystem == "" {
		return bad("patient_id_system is not set: give the URI of the hospital's patient identifiers (results name patients by it)")
	}
	if sf.WatchInterval != 0 && sf.WatchDir == "" {
		return bad("watch_interval is set but watch_dir is not")
	}
	if sf.WatchInterval < 0 || sf.WatchInterval > 0 && time.Duration(sf.WatchInterval) < 100*time.Millisecond {
		return bad("watch_interval %v: give 100ms or more (default 2s)", time.Duration(sf.WatchInterval))
	}
	if sf.MaxRequestMB < 0 || sf.MaxRequestMB > 4096 || sf.MaxInstances < 0 || sf.MaxInstances > 100000 {
		return bad("max_request_mb (1..4096) or max_instances (1..100000) out of range")
	}
	if sf.KeepStudies < 0 || sf.FHIRTimeout < 0 {
		return bad("keep_studies and fhir_timeout must be positive durations")
	}
	if sf.RetryMin < 0 || sf.RetryMax < 0 || sf.RetryMax != 0 && sf.RetryMax < sf.RetryMin {
		return bad("retry_min %v and retry_max %v: give 0 < retry_min <= retry_max", time.Duration(sf.RetryMin), time.Duration(sf.RetryMax))
	}
	watch, feedback := abs(sf.WatchDir), abs(fc.Feedback.Dir)
	for _, p := range []struct{ name, dir string }{{"data.dir", abs(fc.Data.Dir)}, {"feedback.dir", feedback}, {"models_dir", st.modelsDir}, {"state_dir", st.stateDir}} {
		if watch != "" && p.dir != "" && (watch == p.dir || strings.HasPrefix(watch, p.dir+string(filepath.Separator))) {
			return bad("watch_dir %s is inside %s: arriving studies would be taken for training data or state; give a folder of its own", watch, p.name)
		}
	}
	classes := fc.Data.Classes
	segmentation := fc.Data.Layout == "segmentation" // a segmentation model has no classes
	if len(classes) == 0 && fc.Data.Dir != "" && !segmentation {
		entries, err := os.ReadDir(abs(fc.Data.Dir))
		if err != nil {
			return serveSetup{}, fmt.Errorf("config %s: data.classes is not set and data.dir cannot be listed: %w", path, err)
		}
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				classes = append(classes, e.Name())
			}
		}
		sort.Strings(classes)
	}
	if len(classes) == 0 && !segmentation {
		return serveSetup{}, fmt.Errorf("config %s: data.classes is not set and data.dir has no class folders: name the model's classes in label order (or set data.layout: segmentation for a segmentation model)", path)
	}
	if sf.SegmentLabel != "" && !segmentation {
		return bad("segment_label is set but data.layout is not segmentation: it names a segmentation model's foreground")
	}
	if sf.SEGDICOMweb != "" {
		if !segmentation {
			return bad("seg_dicomweb is set but data.layout is not segmentation: only a segmentation model writes DICOM SEGs")
		}
		if u, err := url.Parse(sf.SEGDICOMweb); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("seg_dicomweb %q: give the PACS's DICOMweb root, https://host/path (its STOW-RS is ROOT/studies)", sf.SEGDICOMweb)
		}
	}
	logger, err := daemon.Logger(fc.Log.Format, fc.Log.Level)
	if err != nil {
		return serveSetup{}, fmt.Errorf("config %s: %w", path, err)
	}
	st.fhirBase = strings.TrimRight(sf.FHIRBase, "/")
	st.timeout = time.Duration(sf.FHIRTimeout)
	if st.timeout == 0 {
		st.timeout = 30 * time.Second
	}
	st.cfg = serving.Config{Listen: sf.Listen, WatchDir: watch, WatchInterval: time.Duration(sf.WatchInterval), StateDir: st.stateDir,
		FeedbackDir: feedback, Classes: classes, SegmentLabel: sf.SegmentLabel, SEGStore: sf.SEGDICOMweb, PatientIDSystem: sf.PatientIDSystem, Publisher: sf.Publisher, Logger: logger,
		KeepStudies: time.Duration(sf.KeepStudies), MinBackoff: time.Duration(sf.RetryMin), MaxBackoff: time.Duration(sf.RetryMax),
		MaxRequestBytes: int64(sf.MaxRequestMB) << 20, MaxParts: sf.MaxInstances}
	return st, nil
}

const serveHelp = `Serve the latest published model version this hospital approved, inside the hospital:
studies arrive by DICOMweb STOW-RS (POST /dicomweb/studies on serve.listen) or in serve.watch_dir;
each study's result is recorded (audit log, delivery queue) before STOW-RS answers, and is
delivered to serve.fhir_base as a FHIR R4 transaction with retries; clinicians' feedback
(POST /feedback) becomes labelled examples in feedback.dir. Refuses to start when no approved
version verifies (see 'site-agent models approve').`

func serveCmd(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file` with a serve: block")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	st, err := serveConfig(*configPath, false)
	if err != nil {
		return c.Fail(stderr, err)
	}
	store, err := serving.OpenStore(st.stateDir, 5*time.Second)
	if err != nil {
		return c.Fail(stderr, err)
	}
	defer store.Close()
	approvals, err := store.Approvals()
	if err != nil {
		return c.Fail(stderr, err)
	}
	m, err := serving.LoadApproved(st.modelsDir, st.trust, approvals)
	if err != nil {
		// Restarting cannot fix a refused version: exitPermanent keeps
		// systemd from trying every few seconds.
		st.cfg.Logger.Error("not serving", "err", err)
		c.Fail(stderr, err)
		return exitPermanent
	}
	st.cfg.Model, st.cfg.Store = m, store
	st.cfg.Sender = &fhirr4.Client{Base: st.fhirBase, HTTP: &http.Client{Timeout: st.timeout}}
	srv, err := serving.New(st.cfg)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if a := srv.Addr(); a != nil {
		fmt.Fprintf(stdout, "serving %s on http://%s\n", m.Manifest.Version, a)
	}
	if err := srv.Run(daemon.StopOnSignal(st.cfg.Logger)); err != nil {
		return c.Fail(stderr, err)
	}
	return 0
}

func modelsCommands() *cli.Command {
	return &cli.Command{Name: "models", Synopsis: "approve the published model versions this site serves, and custom model code it trains",
		Help: "site-agent models: the hospital's approval of published versions for serving, and of custom model code for training.",
		Sub: append([]*cli.Command{
			cli.Leaf(&cli.Command{Name: "approve", Args: "VERSION [--config agent.yaml] [--by NAME]",
				Synopsis: "approve a downloaded, verified, published version for serving",
				Help: "Verify serve.models_dir/VERSION (signature against the consortium's key, weights, layout,\n" +
					"model card, SHA256SUMS) and record the approval of that exact manifest, who and when, in\n" +
					"the site's serving database. A rejected or tampered version cannot be approved."}, modelsApprove),
			cli.Leaf(&cli.Command{Name: "list", Args: "[--config agent.yaml] [--json]",
				Synopsis: "list approvals, the serving queue and parked results"}, modelsList),
			cli.Leaf(&cli.Command{Name: "resend", Args: "RESULT_ID | --all [--config agent.yaml]",
				Synopsis: "send parked results (those the FHIR endpoint or the PACS refused for good) to their queues again",
				Help: "Move parked results (FHIR bundles, and DICOM SEGs for serve.seg_dicomweb) back to the end of\n" +
					"their queues, attempts reset, after the cause the endpoint gave (see 'site-agent models list') was fixed. Run it while 'site-agent serve' is\n" +
					"stopped (the serving database is one process's at a time); the next serve delivers them.\n" +
					"Conditional creates make sending a result again harmless."}, modelsResend),
		}, codeCommands()...)}
}

func modelsApprove(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file` with a serve: block")
	by := fs.String("by", "", "who approves (default: the user running the command)")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.Usagef(stderr, "give one VERSION")
	}
	version := pos[0]
	if version == "" || strings.ContainsAny(version, `/\`) || version == "." || version == ".." {
		return c.Usagef(stderr, "version %q is not a version name", version)
	}
	st, err := serveConfig(*configPath, true)
	if err != nil {
		return c.Fail(stderr, err)
	}
	m, sum, err := serving.VerifyVersion(filepath.Join(st.modelsDir, version), st.trust)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if m.Version != version {
		return c.Fail(stderr, fmt.Errorf("folder %s holds version %s: download each version into a folder of its own name", version, m.Version))
	}
	who := *by
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	if who == "" {
		return c.Usagef(stderr, "say who approves with --by NAME")
	}
	store, err := serving.OpenStore(st.stateDir, 2*time.Second)
	if err != nil {
		return c.Fail(stderr, err)
	}
	defer store.Close()
	a := serving.Approval{Version: m.Version, ManifestSHA256: sum, DeviceUID: m.DeviceUID, By: who, At: time.Now().UTC()}
	if err := store.Approve(a); err != nil {
		return c.Fail(stderr, err)
	}
	fmt.Fprintf(stdout, "approved %s (%s, device %s, manifest sha256 %s) by %s\n", m.Version, m.Name, m.DeviceUID, sum, who)
	return 0
}

// modelsListJSON is `site-agent models list --json`.
type modelsListJSON struct {
	Approvals []serving.Approval `json:"approvals"`
	Counts    serving.Counts     `json:"counts"`
	Parked    []serving.Item     `json:"parked"`
	// ParkedSEGs are the DICOM SEGs the PACS refused (serve.seg_dicomweb).
	ParkedSEGs []serving.SEGItem `json:"parked_segs"`
	AuditLog   int               `json:"audit_records"`
	// CodeApprovals are the custom model modules approved for training
	// (models approve-code), CodeLog their hash-chained log.
	CodeApprovals []siteagent.CodeApproval `json:"code_approvals"`
	CodeLog       []siteagent.CodeEvent    `json:"code_log"`
}

// openServeStore opens the serving state of the agent configured in
// configPath, for the models commands that run while serve is stopped.
func openServeStore(configPath string) (*serving.Store, error) {
	fc, abs, err := readConfig(configPath)
	if err != nil {
		return nil, err
	}
	return serving.OpenStore(abs(fc.StateDir), 2*time.Second)
}

// listModels reads what `models list` shows; AuditLog verifies the chain.
func listModels(store *serving.Store) (out modelsListJSON, err error) {
	if out.Approvals, err = store.Approvals(); err != nil {
		return out, err
	}
	if out.Counts, err = store.Counts(); err != nil {
		return out, err
	}
	if out.Parked, err = store.Parked(); err != nil {
		return out, err
	}
	if out.ParkedSEGs, err = store.ParkedSEGs(); err != nil {
		return out, err
	}
	log, err := store.AuditLog()
	out.AuditLog = len(log)
	return out, err
}

func modelsList(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file` with a serve: block")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	store, err := openServeStore(*configPath)
	if err != nil {
		return c.Fail(stderr, err)
	}
	defer store.Close()
	out, err := listModels(store)
	if err != nil {
		return c.Fail(stderr, err)
	}
	fc, abs, err := readConfig(*configPath)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if out.CodeApprovals, out.CodeLog, err = siteagent.CodeApprovals(abs(fc.StateDir)); err != nil {
		return c.Fail(stderr, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tAPPROVED BY\tAT\tDEVICE UID\tMANIFEST SHA-256")
	for _, a := range out.Approvals {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Version, a.By, a.At.Format(time.RFC3339), a.DeviceUID, a.ManifestSHA256)
	}
	tw.Flush()
	k := out.Counts
	fmt.Fprintf(stdout, "\nserved %d, delivered %d, queued %d, parked %d (resent %d), feedback %d; audit log: %d records, chain intact\n",
		k.Served, k.Delivered, k.Queued, k.Parked, k.Resent, k.Feedback, out.AuditLog)
	for _, p := range out.Parked {
		fmt.Fprintf(stdout, "parked: result %s at %s after %d attempts: %s\n", p.ResultID, p.Parked.Format(time.RFC3339), p.Attempts, p.LastError)
	}
	for _, p := range out.ParkedSEGs {
		fmt.Fprintf(stdout, "parked SEG: result %s at %s after %d attempts: %s\n", p.ResultID, p.Parked.Format(time.RFC3339), p.Attempts, p.LastError)
	}
	printCodeApprovals(stdout, out.CodeApprovals, out.CodeLog)
	return 0
}

func modelsResend(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file` with a serve: block")
	all := fs.Bool("all", false, "resend every parked result")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	id := ""
	switch {
	case *all && len(pos) == 0:
	case !*all && len(pos) == 1 && pos[0] != "":
		id = pos[0]
	default:
		return c.Usagef(stderr, "give one RESULT_ID (from 'site-agent models list') or --all")
	}
	store, err := openServeStore(*configPath)
	if err != nil {
		return c.Fail(stderr, err)
	}
	defer store.Close()
	moved, err := store.Resend(id)
	if err != nil {
		return c.Fail(stderr, err)
	}
	for _, r := range moved {
		fmt.Fprintf(stdout, "queued again: result %s (%s)\n", r.ResultID, r.What)
	}
	fmt.Fprintf(stdout, "%d parked item(s) queued again; 'site-agent serve' delivers them\n", len(moved))
	return 0
}
