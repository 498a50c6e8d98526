package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
)

// pkiCommand is `concordctl pki ...`: the consortium CA and startup kits.
// It works on the CA folder and never calls the coordinator.
//
//	pki init   --dir DIR [--name NAME]
//	pki issue  --dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator --host H...) --out KITDIR
//	           [--coordinator-addr HOST:PORT] [--validity 8760h]
//	pki revoke --dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator NAME | --serial SERIAL)
//	pki list   --dir DIR [--json]
func pkiCommand(g *globals) *cli.Command {
	sub := make([]*cli.Command, len(subcommands))
	for i, sc := range subcommands {
		c := &cli.Command{Name: sc.name, Args: sc.usage, Synopsis: sc.short, Help: sc.synopsis}
		setup := sc.setup
		c.Run = func(args []string, stdout, stderr io.Writer) int {
			fs := c.NewFlagSet(stderr)
			run := setup(fs)
			if f := fs.Lookup("json"); f != nil && g.json {
				f.Value.Set("true") // concordctl --json pki list
			}
			pos, code, ok := c.Parse(fs, args, stdout, stderr)
			if !ok {
				return code
			}
			if code, ok := c.NoArgs(fs, pos, stderr); !ok {
				return code
			}
			if err := run(stdout); err != nil {
				var u usageError
				if errors.As(err, &u) {
					return c.Usagef(stderr, "%v", err)
				}
				return c.Fail(stderr, err)
			}
			return 0
		}
		sub[i] = c
	}
	return &cli.Command{Name: "pki", Synopsis: "create the consortium CA and startup kits, revoke and list certificates",
		Help: "concordctl pki: the consortium certificate authority and startup kits.", Sub: sub}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type subcommand struct {
	name, usage, short, synopsis string
	// setup declares the flags and returns the function to run after parsing.
	setup func(fs *flag.FlagSet) func(stdout io.Writer) error
}

var subcommands = []subcommand{
	{"init", "--dir DIR [--name NAME]", "create the consortium certificate authority", "Create the consortium CA (ca.pem, ca-key.pem, inventory.json) in DIR. Keep DIR on the admin's machine, backed up and private.", setupInit},
	{"issue", "--dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator --host HOST...) --out KITDIR [--coordinator-addr HOST:PORT] [--listen ADDR] [--state-dir DIR] [--data-dir DIR]",
		"issue a startup kit for a site, admin, auditor or the coordinator", "Issue a certificate and write a startup kit (cert.pem, key.pem, ca.pem and a config file) to KITDIR.", setupIssue},
	{"revoke", "--dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator NAME | --serial SERIAL)", "revoke every certificate of a holder, or one by serial", "pki.Revoke every certificate of one holder, or one certificate by serial (the old one after a renewal). A coordinator watching the inventory refuses the revoked certificates from their next call on.", setupRevoke},
	{"list", "--dir DIR [--json]", "list the certificates issued", "List the certificates in the inventory.", setupList},
}

func requireDir(dir string) error {
	if dir == "" {
		return usageError{"--dir is required: the CA directory made by pki init"}
	}
	return nil
}

func setupInit(fs *flag.FlagSet) func(io.Writer) error {
	dir := fs.String("dir", "", "CA `directory` to create")
	name := fs.String("name", pki.DefaultCACommonName, "common `name` of the CA certificate")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	return func(stdout io.Writer) error {
		if err := requireDir(*dir); err != nil {
			return err
		}
		if err := pki.InitCA(*dir, *name); err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, map[string]any{"dir": *dir, "name": *name,
				"ca_key": filepath.Join(*dir, pki.CAKeyFile), "inventory": filepath.Join(*dir, pki.InventoryFile)})
		}
		fmt.Fprintf(stdout, "Created the consortium CA %q in %s.\n"+
			"Keep %s private and backed up: whoever holds it can admit anyone to the consortium.\n"+
			"Next: concordctl pki issue --dir %s --coordinator --host HOSTNAME --out coordinator-kit\n",
			*name, *dir, filepath.Join(*dir, pki.CAKeyFile), *dir)
		return nil
	}
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// holderFlags declares --site, --admin and --auditor NAME; exactly one of
// them (or a coordinator flag handled by the caller) must be given.
type holderFlags struct{ site, admin, auditor, observer *string }

func declareHolder(fs *flag.FlagSet, verb string) holderFlags {
	return holderFlags{
		site:     fs.String("site", "", verb+" the site `NAME` (e.g. st-marys)"),
		admin:    fs.String("admin", "", verb+" the consortium admin `NAME`"),
		auditor:  fs.String("auditor", "", verb+" the auditor `NAME` (reads and exports the audit log and reports; cannot start or stop jobs)"),
		observer: fs.String("observer", "", verb+" the observer `NAME` (sees sites, jobs and models only)"),
	}
}

func (h holderFlags) chosen(coordinator bool, coordinatorName string) (pki.Role, string, error) {
	var role pki.Role
	var name string
	n := 0
	for _, c := range []struct {
		r pki.Role
		v string
	}{{pki.RoleSite, *h.site}, {pki.RoleAdmin, *h.admin}, {pki.RoleAuditor, *h.auditor}, {pki.RoleObserver, *h.observer}} {
		if c.v != "" {
			role, name = c.r, c.v
			n++
		}
	}
	if coordinator {
		role, name = pki.RoleCoordinator, coordinatorName
		n++
	}
	if n != 1 {
		return "", "", usageError{"give exactly one of --site NAME, --admin NAME, --auditor NAME, --observer NAME, --coordinator"}
	}
	return role, name, nil
}

func setupIssue(fs *flag.FlagSet) func(io.Writer) error {
	dir := fs.String("dir", "", "CA `directory` made by pki init")
	holder := declareHolder(fs, "issue for")
	coordinator := fs.Bool("coordinator", false, "issue the coordinator's server certificate (needs --host)")
	coordName := fs.String("name", "coordinator", "`name` of the coordinator, with --coordinator")
	var hosts stringList
	fs.Var(&hosts, "host", "`HOST`: a DNS name or IP address sites use to reach the coordinator (repeat for several)")
	out := fs.String("out", "", "kit `folder` to write (created; must not already hold a kit)")
	addr := fs.String("coordinator-addr", "", "`HOST:PORT` the kit's holder dials (default: the coordinator certificate's first host, port "+strconv.Itoa(pki.DefaultPort)+")")
	validity := fs.Duration("validity", pki.DefaultLeafValidity, "how long the certificate is valid")
	listen := fs.String("listen", "", "with --coordinator: the `address` it listens on (default :"+strconv.Itoa(pki.DefaultPort)+")")
	stateDir := fs.String("state-dir", "", "the kit's state_dir (a site's default /var/lib/concord/agent, the coordinator's /var/lib/concord/coordinator; relative: to the kit folder)")
	dataDir := fs.String("data-dir", "", "with --site: the `folder` of DICOM files (default /var/lib/concord/images)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	return func(stdout io.Writer) error {
		if err := requireDir(*dir); err != nil {
			return err
		}
		role, name, err := holder.chosen(*coordinator, *coordName)
		if err != nil {
			return err
		}
		if *out == "" {
			return usageError{"--out is required: the folder to write the kit to"}
		}
		if *validity <= 0 {
			return usageError{"--validity must be positive, e.g. 8760h for a year"}
		}
		kc := pki.KitConfig{Listen: *listen, StateDir: *stateDir, DataDir: *dataDir}
		if *listen != "" && role != pki.RoleCoordinator {
			return usageError{"--listen is for the coordinator's kit (--coordinator)"}
		}
		if *dataDir != "" && role != pki.RoleSite {
			return usageError{"--data-dir is for a site's kit (--site NAME)"}
		}
		if *stateDir != "" && role != pki.RoleSite && role != pki.RoleCoordinator {
			return usageError{"--state-dir is for a site's or the coordinator's kit"}
		}
		switch role {
		case pki.RoleCoordinator:
			abs, err := filepath.Abs(filepath.Join(*dir, pki.InventoryFile))
			if err != nil {
				return err
			}
			kc.InventoryPath = abs
		default:
			kc.CoordinatorAddr = *addr
			if kc.CoordinatorAddr == "" {
				if kc.CoordinatorAddr, err = defaultCoordinatorAddr(*dir); err != nil {
					return err
				}
			}
			if err := pki.CheckAddr(kc.CoordinatorAddr); err != nil {
				return usageError{err.Error()}
			}
		}
		if err := pki.CheckKitDir(*out, role); err != nil {
			return err
		}
		kit, err := pki.Issue(*dir, pki.IssueRequest{Role: role, Name: name, Hosts: hosts, Validity: *validity})
		if err != nil {
			return err
		}
		auditKey, err := kitAuditKey(*dir, role, name, &kc)
		if err != nil {
			return err
		}
		cfg, err := pki.ConfigYAML(kit, kc)
		if err != nil {
			return err
		}
		if err := pki.WriteKit(*out, kit, cfg); err != nil {
			return fmt.Errorf("%w (certificate %s was issued and recorded; revoke it with pki revoke if you will not use it)", err, kit.Serial)
		}
		if auditKey != nil {
			if err := writeKitAuditKey(*dir, *out, role, auditKey); err != nil {
				return err
			}
		}
		cfgName := pki.ConfigFileName(role)
		var older []string
		if inv, err := pki.LoadInventory(filepath.Join(*dir, pki.InventoryFile)); err == nil {
			for _, e := range inv.Active(role, name, time.Now()) {
				if e.Serial != kit.Serial {
					older = append(older, e.Serial)
				}
			}
		}
		if *asJSON {
			if older == nil {
				older = []string{}
			}
			return writeJSON(stdout, map[string]any{"role": role, "name": name, "serial": kit.Serial,
				"not_after": kit.NotAfter.UTC().Format(time.RFC3339), "kit_dir": *out,
				"config_file": filepath.Join(*out, cfgName), "older_active_serials": older})
		}
		if inv, err := pki.LoadInventory(filepath.Join(*dir, pki.InventoryFile)); err == nil {
			for _, e := range inv.Active(role, name, time.Now()) {
				if e.Serial != kit.Serial {
					fmt.Fprintf(stdout, "Note: %s %s still has certificate %s (valid until %s); once the new kit is installed, revoke it with: concordctl pki revoke --dir %s --serial %s\n",
						role, name, e.Serial, e.NotAfter.Format(time.DateOnly), *dir, e.Serial)
				}
			}
		}
		fmt.Fprintf(stdout, "Issued %s %s: certificate %s, valid until %s.\n", role, name, kit.Serial, kit.NotAfter.Format(time.DateOnly))
		fmt.Fprintf(stdout, "Wrote %s: %s, %s (private key, keep secret), %s, %s.\n", *out, pki.KitCertFile, pki.KitKeyFile, pki.KitCAFile, cfgName)
		switch role {
		case pki.RoleSite:
			fmt.Fprintf(stdout, "Next: send this folder to %s's IT over a secure channel (not plain e-mail).\n"+
				"They set data.dir in %s, then start the agent with: site-agent run --config %s\n", name, cfgName, cfgName)
		case pki.RoleCoordinator:
			fmt.Fprintf(stdout, "Next: install this folder on the coordinator host; %s points at %s, keep that file readable there\n"+
				"so revocations take effect. Start with: coordinator --config %s\n", cfgName, kc.InventoryPath, cfgName)
		default:
			fmt.Fprintf(stdout, "Next: give this folder to %s over a secure channel; they run e.g.: concordctl --config %s sites list\n", name, cfgName)
		}
		return nil
	}
}

// defaultCoordinatorAddr is pki.DefaultCoordinatorAddr; no coordinator
// certificate yet is a usage error (the flag is then needed).
func defaultCoordinatorAddr(caDir string) (string, error) {
	addr, err := pki.DefaultCoordinatorAddr(caDir)
	if errors.Is(err, pki.ErrNoCoordinator) {
		return "", usageError{err.Error()}
	}
	return addr, err
}

func setupRevoke(fs *flag.FlagSet) func(io.Writer) error {
	dir := fs.String("dir", "", "CA `directory` made by pki init")
	holder := declareHolder(fs, "revoke")
	coordinator := fs.String("coordinator", "", "revoke the coordinator `NAME`")
	serial := fs.String("serial", "", "revoke only the certificate with this `SERIAL` (see pki list)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	return func(stdout io.Writer) error {
		if err := requireDir(*dir); err != nil {
			return err
		}
		if *serial != "" {
			if *holder.site != "" || *holder.admin != "" || *holder.auditor != "" || *coordinator != "" {
				return usageError{"give either --serial or one holder (--site, --admin, --auditor, --coordinator), not both"}
			}
			if err := pki.RevokeSerial(*dir, *serial); err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(stdout, map[string]any{"revoked": true, "serial": *serial})
			}
			fmt.Fprintf(stdout, "Revoked certificate %s. A coordinator watching %s refuses it from its next call on.\n", *serial, filepath.Join(*dir, pki.InventoryFile))
			return nil
		}
		role, name, err := holder.chosen(*coordinator != "", *coordinator)
		if err != nil {
			return err
		}
		if err := pki.Revoke(*dir, role, name); err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, map[string]any{"revoked": true, "role": role, "name": name})
		}
		fmt.Fprintf(stdout, "Revoked every certificate of %s %s. Within seconds the coordinator closes its open streams,\n"+
			"stops its uploads and removes it from open jobs (see `concordctl events`), provided it watches\n"+
			"%s (copy the file there if it runs elsewhere).\n", role, name, filepath.Join(*dir, pki.InventoryFile))
		return nil
	}
}

func setupList(fs *flag.FlagSet) func(io.Writer) error {
	dir := fs.String("dir", "", "CA `directory` made by pki init")
	asJSON := fs.Bool("json", false, "print the inventory as JSON")
	return func(stdout io.Writer) error {
		if err := requireDir(*dir); err != nil {
			return err
		}
		inv, err := pki.LoadInventory(filepath.Join(*dir, pki.InventoryFile))
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(inv)
		}
		if len(inv.Certificates) == 0 {
			fmt.Fprintln(stdout, "No certificates issued yet. pki.Issue one with: concordctl pki issue --dir", *dir, "--site NAME --out KITDIR")
			return nil
		}
		now := time.Now()
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tNAME\tSTATUS\tNOT AFTER\tSERIAL\tHOSTS")
		for _, e := range inv.SortedForDisplay() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Role, e.Name, e.Status(now), e.NotAfter.Format(time.DateOnly), e.Serial, strings.Join(e.Hosts, ","))
		}
		return tw.Flush()
	}
}

// The consortium's audit trust file (ca/audit-trust.txt) is kept by the CA:
// issuing the coordinator's kit makes its audit log key, issuing a site's
// kit makes its witness key, and each public key goes into the trust file,
// which a compliance officer gives to `concordctl audit verify --trust`.
// So the keys an auditor trusts come from the consortium's CA, not from
// the coordinator whose log is being checked.

// AuditTrustFile is the trust file's name in the CA folder.
const AuditTrustFile = "audit-trust.txt"

const (
	kitAuditKeyFile   = "audit-key.pem"
	kitWitnessKeyFile = "witness-key.pem"
	auditOrigin       = "concord/audit"
)

// kitAuditKey makes the audit key of a coordinator or site kit and fills
// the kit config's audit section.
func kitAuditKey(caDir string, role pki.Role, name string, kc *pki.KitConfig) (*audit.Key, error) {
	switch role {
	case pki.RoleCoordinator:
		kc.Audit = pki.KitAudit{Origin: auditOrigin, Key: kitAuditKeyFile}
		return audit.GenerateKey(nil, "coordinator")
	case pki.RoleSite:
		kc.Audit = pki.KitAudit{Origin: auditOrigin, WitnessKey: kitWitnessKeyFile}
		if logs, _, err := readTrustKeys(filepath.Join(caDir, AuditTrustFile)); err == nil && len(logs) > 0 {
			kc.Audit.LogKey = logs[len(logs)-1]
		}
		return audit.GenerateKey(nil, name)
	}
	return nil, nil
}

// writeKitAuditKey writes the key into the kit and its public key into the
// consortium's trust file: a new log key replaces the old one, a site's new
// witness key replaces that site's old one, and the quorum is a majority
// of the witnesses.
func writeKitAuditKey(caDir, kitDir string, role pki.Role, k *audit.Key) error {
	file := kitWitnessKeyFile
	if role == pki.RoleCoordinator {
		file = kitAuditKeyFile
	}
	if err := audit.WriteKeyFile(filepath.Join(kitDir, file), k); err != nil {
		return err
	}
	path := filepath.Join(caDir, AuditTrustFile)
	logs, witnesses, err := readTrustKeys(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit trust file: %w", err)
	}
	sameName := func(v string) bool { n, _, _ := strings.Cut(v, "+"); return n == k.Name() }
	if role == pki.RoleCoordinator {
		logs = []string{k.Verifier()}
	} else {
		witnesses = append(slices.DeleteFunc(witnesses, sameName), k.Verifier())
	}
	if len(logs) == 0 {
		// Sites issued before the coordinator: the trust file waits for its
		// log key, and those sites pin it from their first connection.
		return os.WriteFile(path, pendingTrust(witnesses), 0o644)
	}
	quorum := 0
	if len(witnesses) > 0 {
		quorum = len(witnesses)/2 + 1
	}
	t, err := audit.NewTrust(auditOrigin, logs, nil, witnesses, quorum)
	if err != nil {
		return err
	}
	return os.WriteFile(path, t.Marshal(), 0o644)
}

// pendingTrust is a trust file without a log key yet.
func pendingTrust(witnesses []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "origin %s\n# log KEY: written when the coordinator's kit is issued\n", auditOrigin)
	for _, w := range witnesses {
		fmt.Fprintf(&b, "witness %s\n", w)
	}
	return []byte(b.String())
}

// readTrustKeys reads the log and witness keys of a trust file, which may
// not have its log key yet.
func readTrustKeys(path string) (logs, witnesses []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		switch f := strings.Fields(line); {
		case len(f) == 2 && f[0] == "log":
			logs = append(logs, f[1])
		case len(f) == 2 && f[0] == "witness":
			witnesses = append(witnesses, f[1])
		}
	}
	return logs, witnesses, nil
}
