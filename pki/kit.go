package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Kit is what Issue returns: a signed certificate, its private key and the
// CA certificate, with the identity they carry.
type Kit struct {
	Role     Role
	Name     string
	CertPEM  []byte
	KeyPEM   []byte
	CAPEM    []byte
	Serial   string
	NotAfter time.Time
}

// Config file names per role, as WriteKit writes them.
const (
	AgentConfigFile       = "agent.yaml"
	CtlConfigFile         = "concordctl.yaml"
	CoordinatorConfigFile = "coordinator.yaml"
)

// ConfigFileName is the config file of a kit for role: agent.yaml for a
// site, coordinator.yaml for the coordinator, concordctl.yaml otherwise.
func ConfigFileName(role Role) string {
	switch role {
	case RoleSite:
		return AgentConfigFile
	case RoleCoordinator:
		return CoordinatorConfigFile
	}
	return CtlConfigFile
}

// WriteKit writes a startup kit into dir (created 0700 if missing):
// cert.pem, key.pem (0600), ca.pem and, if configYAML is not nil, the
// config file ConfigFileName(kit.Role). It refuses to overwrite any of them,
// so a kit already sent somewhere is never silently replaced.
func WriteKit(dir string, kit Kit, configYAML []byte) error {
	if len(kit.CertPEM) == 0 || len(kit.KeyPEM) == 0 || len(kit.CAPEM) == 0 {
		return errors.New("write kit: certificate, key and CA must all be present")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write kit: %w", err)
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{KitKeyFile, kit.KeyPEM, 0o600},
		{KitCertFile, kit.CertPEM, 0o644},
		{KitCAFile, kit.CAPEM, 0o644},
	}
	if configYAML != nil {
		files = append(files, struct {
			name string
			data []byte
			perm os.FileMode
		}{ConfigFileName(kit.Role), configYAML, 0o644})
	}
	if err := CheckKitDir(dir, kit.Role); err != nil {
		return fmt.Errorf("write kit: %w", err)
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("write kit: %w", err)
		}
	}
	return nil
}

// CheckKitDir fails if dir already holds any file a kit for role would write.
func CheckKitDir(dir string, role Role) error {
	for _, name := range []string{KitKeyFile, KitCertFile, KitCAFile, ConfigFileName(role)} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s already holds %s; choose another folder or remove it first: %w", dir, name, fs.ErrExist)
		}
	}
	return nil
}

// KitConfig holds the deployment facts a kit's config file needs beyond
// the kit itself. Zero fields get the documented defaults.
type KitConfig struct {
	// CoordinatorAddr is host:port the site or admin dials. Required for
	// site, admin and auditor kits.
	CoordinatorAddr string
	// InventoryPath is the inventory the coordinator watches. Required for
	// the coordinator kit.
	InventoryPath string
	// Listen is the coordinator's listen address; default ":7443".
	Listen string
	// DataDir is the site's image folder; default /var/lib/concord/images.
	DataDir string
	// StateDir defaults to /var/lib/concord/agent for a site and
	// /var/lib/concord/coordinator for the coordinator.
	StateDir string
	// Audit names the audit log and the key files of the kit: the
	// coordinator's log key, or a site's witness key and the log key it
	// pins (privacy/audit). Empty: not written.
	Audit KitAudit
}

// KitAudit is the audit section of a kit's config file.
type KitAudit struct {
	Origin     string `yaml:"origin,omitempty"`
	Key        string `yaml:"key,omitempty"`         // coordinator: its log key file
	WitnessKey string `yaml:"witness_key,omitempty"` // site: its witness key file
	LogKey     string `yaml:"log_key,omitempty"`     // site: the coordinator's log key to pin
}

// DefaultPort is the coordinator's port unless told otherwise.
const DefaultPort = 7443

type tlsSection struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

var kitTLS = tlsSection{CA: KitCAFile, Cert: KitCertFile, Key: KitKeyFile}

// ConfigYAML renders the kit's config file. Paths in it are relative to the
// file's own folder, so the kit folder can be moved as a whole.
func ConfigYAML(kit Kit, c KitConfig) ([]byte, error) {
	var doc any
	var header string
	switch kit.Role {
	case RoleSite:
		if err := CheckAddr(c.CoordinatorAddr); err != nil {
			return nil, err
		}
		doc = struct {
			Site        string     `yaml:"site"`
			Coordinator string     `yaml:"coordinator"`
			TLS         tlsSection `yaml:"tls,flow"`
			Data        struct {
				Dir string `yaml:"dir"`
			} `yaml:"data,flow"`
			StateDir string    `yaml:"state_dir"`
			Audit    *KitAudit `yaml:"audit,omitempty"`
		}{Site: kit.Name, Coordinator: c.CoordinatorAddr, TLS: kitTLS, Data: struct {
			Dir string `yaml:"dir"`
		}{or(c.DataDir, "/var/lib/concord/images")}, StateDir: or(c.StateDir, "/var/lib/concord/agent"), Audit: c.Audit.orNil()}
		header = "Concord site agent for site " + kit.Name
	case RoleAdmin, RoleAuditor, RoleObserver:
		if err := CheckAddr(c.CoordinatorAddr); err != nil {
			return nil, err
		}
		doc = struct {
			Coordinator string     `yaml:"coordinator"`
			TLS         tlsSection `yaml:"tls,flow"`
		}{c.CoordinatorAddr, kitTLS}
		header = "concordctl for " + string(kit.Role) + " " + kit.Name
	case RoleCoordinator:
		if c.InventoryPath == "" {
			return nil, errors.New("coordinator config: the inventory path is required")
		}
		doc = struct {
			Listen    string     `yaml:"listen"`
			TLS       tlsSection `yaml:"tls,flow"`
			Inventory string     `yaml:"inventory"`
			StateDir  string     `yaml:"state_dir"`
			Audit     *KitAudit  `yaml:"audit,omitempty"`
		}{or(c.Listen, ":"+strconv.Itoa(DefaultPort)), kitTLS, c.InventoryPath, or(c.StateDir, "/var/lib/concord/coordinator"), c.Audit.orNil()}
		header = "Concord coordinator " + kit.Name
	default:
		return nil, fmt.Errorf("config for role %q: %w", kit.Role, ErrInvalidIdentity)
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	head := "# " + header + ", written by concordctl pki issue (certificate " + kit.Serial + ").\n" +
		"# Relative paths are relative to this file's folder.\n"
	return append([]byte(head), body...), nil
}

// CheckAddr checks that addr is host:port with a port in 1-65535.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("coordinator address %q: give host:port, e.g. coord.example.org:%d", addr, DefaultPort)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("coordinator address %q: port must be 1-65535", addr)
	}
	return nil
}

func (a KitAudit) orNil() *KitAudit {
	if a == (KitAudit{}) {
		return nil
	}
	return &a
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
