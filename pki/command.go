package pki

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Command runs `concordctl pki ...`. args are the words after "pki" (a
// leading "pki" is accepted too). It returns the process exit code: 0 on
// success, 1 when the command failed, 2 on a usage error.
//
//	pki init   --dir DIR [--name NAME]
//	pki issue  --dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator --host H...) --out KITDIR
//	           [--coordinator-addr HOST:PORT] [--validity 8760h]
//	pki revoke --dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator NAME | --serial SERIAL)
//	pki list   --dir DIR [--json]
func Command(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "pki" {
		args = args[1:]
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, pkiUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range subcommands {
		if c.name == args[0] {
			fs := flag.NewFlagSet("pki "+c.name, flag.ContinueOnError)
			fs.SetOutput(stderr)
			fs.Usage = func() {
				fmt.Fprintf(stderr, "usage: concordctl pki %s\n\n%s\n\nflags:\n", c.usage, c.synopsis)
				fs.PrintDefaults()
			}
			run := c.setup(fs)
			if err := fs.Parse(args[1:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return 0
				}
				return 2
			}
			if fs.NArg() > 0 {
				fmt.Fprintf(stderr, "pki %s: unexpected argument %q\n", c.name, fs.Arg(0))
				fs.Usage()
				return 2
			}
			if err := run(stdout); err != nil {
				var u usageError
				fmt.Fprintf(stderr, "pki %s: %v\n", c.name, err)
				if errors.As(err, &u) {
					return 2
				}
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "pki: unknown command %q\n\n%s", args[0], pkiUsage)
	return 2
}

const pkiUsage = `usage: concordctl pki <command> [flags]

commands:
  init     create the consortium certificate authority
  issue    issue a startup kit for a site, admin, auditor or the coordinator
  revoke   revoke every certificate of a site, admin, auditor or coordinator
  list     list the certificates issued

Run "concordctl pki <command> -h" for a command's flags.
`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type subcommand struct {
	name, usage, synopsis string
	// setup declares the flags and returns the function to run after parsing.
	setup func(fs *flag.FlagSet) func(stdout io.Writer) error
}

var subcommands = []subcommand{
	{"init", "init --dir DIR [--name NAME]", "Create the consortium CA (ca.pem, ca-key.pem, inventory.json) in DIR. Keep DIR on the admin's machine, backed up and private.", setupInit},
	{"issue", "issue --dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator --host HOST...) --out KITDIR [--coordinator-addr HOST:PORT]",
		"Issue a certificate and write a startup kit (cert.pem, key.pem, ca.pem and a config file) to KITDIR.", setupIssue},
	{"revoke", "revoke --dir DIR (--site NAME | --admin NAME | --auditor NAME | --coordinator NAME | --serial SERIAL)", "Revoke every certificate of one holder, or one certificate by serial (the old one after a renewal). A coordinator watching the inventory refuses the revoked certificates from their next call on.", setupRevoke},
	{"list", "list --dir DIR [--json]", "List the certificates in the inventory.", setupList},
}

func requireDir(dir string) error {
	if dir == "" {
		return usageError{"--dir is required: the CA directory made by pki init"}
	}
	return nil
}

func setupInit(fs *flag.FlagSet) func(io.Writer) error {
	dir := fs.String("dir", "", "CA `directory` to create")
	name := fs.String("name", defaultCACommonName, "common `name` of the CA certificate")
	return func(stdout io.Writer) error {
		if err := requireDir(*dir); err != nil {
			return err
		}
		if err := InitCA(*dir, *name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created the consortium CA %q in %s.\n"+
			"Keep %s private and backed up: whoever holds it can admit anyone to the consortium.\n"+
			"Next: concordctl pki issue --dir %s --coordinator --host HOSTNAME --out coordinator-kit\n",
			*name, *dir, filepath.Join(*dir, CAKeyFile), *dir)
		return nil
	}
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// holderFlags declares --site, --admin and --auditor NAME; exactly one of
// them (or a coordinator flag handled by the caller) must be given.
type holderFlags struct{ site, admin, auditor *string }

func declareHolder(fs *flag.FlagSet, verb string) holderFlags {
	return holderFlags{
		site:    fs.String("site", "", verb+" the site `NAME` (e.g. st-marys)"),
		admin:   fs.String("admin", "", verb+" the consortium admin `NAME`"),
		auditor: fs.String("auditor", "", verb+" the auditor `NAME` (read-only access to audit reports)"),
	}
}

func (h holderFlags) chosen(coordinator bool, coordinatorName string) (Role, string, error) {
	var role Role
	var name string
	n := 0
	for _, c := range []struct {
		r Role
		v string
	}{{RoleSite, *h.site}, {RoleAdmin, *h.admin}, {RoleAuditor, *h.auditor}} {
		if c.v != "" {
			role, name = c.r, c.v
			n++
		}
	}
	if coordinator {
		role, name = RoleCoordinator, coordinatorName
		n++
	}
	if n != 1 {
		return "", "", usageError{"give exactly one of --site NAME, --admin NAME, --auditor NAME, --coordinator"}
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
	addr := fs.String("coordinator-addr", "", "`HOST:PORT` the kit's holder dials (default: the coordinator certificate's first host, port "+strconv.Itoa(DefaultPort)+")")
	validity := fs.Duration("validity", DefaultLeafValidity, "how long the certificate is valid")
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
		var kc KitConfig
		switch role {
		case RoleCoordinator:
			abs, err := filepath.Abs(filepath.Join(*dir, InventoryFile))
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
			if err := checkAddr(kc.CoordinatorAddr); err != nil {
				return usageError{err.Error()}
			}
		}
		if err := checkKitDir(*out, role); err != nil {
			return err
		}
		kit, err := Issue(*dir, IssueRequest{Role: role, Name: name, Hosts: hosts, Validity: *validity})
		if err != nil {
			return err
		}
		cfg, err := ConfigYAML(kit, kc)
		if err != nil {
			return err
		}
		if err := WriteKit(*out, kit, cfg); err != nil {
			return fmt.Errorf("%w (certificate %s was issued and recorded; revoke it with pki revoke if you will not use it)", err, kit.Serial)
		}
		cfgName := ConfigFileName(role)
		if inv, err := LoadInventory(filepath.Join(*dir, InventoryFile)); err == nil {
			for _, e := range inv.Active(role, name, time.Now()) {
				if e.Serial != kit.Serial {
					fmt.Fprintf(stdout, "Note: %s %s still has certificate %s (valid until %s); once the new kit is installed, revoke it with: concordctl pki revoke --dir %s --serial %s\n",
						role, name, e.Serial, e.NotAfter.Format(time.DateOnly), *dir, e.Serial)
				}
			}
		}
		fmt.Fprintf(stdout, "Issued %s %s: certificate %s, valid until %s.\n", role, name, kit.Serial, kit.NotAfter.Format(time.DateOnly))
		fmt.Fprintf(stdout, "Wrote %s: %s, %s (private key, keep secret), %s, %s.\n", *out, KitCertFile, KitKeyFile, KitCAFile, cfgName)
		switch role {
		case RoleSite:
			fmt.Fprintf(stdout, "Next: send this folder to %s's IT over a secure channel (not plain e-mail).\n"+
				"They set data.dir in %s, then start the agent with: site-agent run --config %s\n", name, cfgName, cfgName)
		case RoleCoordinator:
			fmt.Fprintf(stdout, "Next: install this folder on the coordinator host; %s points at %s, keep that file readable there\n"+
				"so revocations take effect. Start with: coordinator --config %s\n", cfgName, kc.InventoryPath, cfgName)
		default:
			fmt.Fprintf(stdout, "Next: give this folder to %s over a secure channel; they run e.g.: concordctl --config %s sites list\n", name, cfgName)
		}
		return nil
	}
}

// defaultCoordinatorAddr is the first host of the newest active coordinator
// certificate, at DefaultPort.
func defaultCoordinatorAddr(caDir string) (string, error) {
	inv, err := LoadInventory(filepath.Join(caDir, InventoryFile))
	if err != nil {
		return "", err
	}
	now := time.Now()
	for i := len(inv.Certificates) - 1; i >= 0; i-- {
		e := inv.Certificates[i]
		if e.Role == RoleCoordinator && e.Status(now) == "active" && len(e.Hosts) > 0 {
			return net.JoinHostPort(e.Hosts[0], strconv.Itoa(DefaultPort)), nil
		}
	}
	return "", usageError{"no coordinator certificate issued yet: pass --coordinator-addr HOST:PORT, or issue the coordinator's kit first"}
}

func setupRevoke(fs *flag.FlagSet) func(io.Writer) error {
	dir := fs.String("dir", "", "CA `directory` made by pki init")
	holder := declareHolder(fs, "revoke")
	coordinator := fs.String("coordinator", "", "revoke the coordinator `NAME`")
	serial := fs.String("serial", "", "revoke only the certificate with this `SERIAL` (see pki list)")
	return func(stdout io.Writer) error {
		if err := requireDir(*dir); err != nil {
			return err
		}
		if *serial != "" {
			if *holder.site != "" || *holder.admin != "" || *holder.auditor != "" || *coordinator != "" {
				return usageError{"give either --serial or one holder (--site, --admin, --auditor, --coordinator), not both"}
			}
			if err := RevokeSerial(*dir, *serial); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Revoked certificate %s. A coordinator watching %s refuses it from its next call on.\n", *serial, filepath.Join(*dir, InventoryFile))
			return nil
		}
		role, name, err := holder.chosen(*coordinator != "", *coordinator)
		if err != nil {
			return err
		}
		if err := Revoke(*dir, role, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked every certificate of %s %s. The coordinator refuses its calls from the next call on,\n"+
			"provided it watches %s (copy the file there if it runs elsewhere).\n", role, name, filepath.Join(*dir, InventoryFile))
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
		inv, err := LoadInventory(filepath.Join(*dir, InventoryFile))
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(inv)
		}
		if len(inv.Certificates) == 0 {
			fmt.Fprintln(stdout, "No certificates issued yet. Issue one with: concordctl pki issue --dir", *dir, "--site NAME --out KITDIR")
			return nil
		}
		now := time.Now()
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tNAME\tSTATUS\tNOT AFTER\tSERIAL\tHOSTS")
		for _, e := range inv.sortedForDisplay() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Role, e.Name, e.Status(now), e.NotAfter.Format(time.DateOnly), e.Serial, strings.Join(e.Hosts, ","))
		}
		return tw.Flush()
	}
}
