package ociimage

import (
	"path/filepath"
	"time"
)

// Daemons are the specs of the two images Concord ships, from the binaries
// in binDir (coordinator, site-agent and concord-healthcheck). Their default
// arguments read the config where the Helm charts and the compose file
// mount it, the same paths the systemd units use.
func Daemons(binDir, caCerts, version, revision string, created time.Time) []Spec {
	return []Spec{
		{Name: "coordinator", Binary: filepath.Join(binDir, "coordinator"), Probe: filepath.Join(binDir, ProbeName), CACerts: caCerts, Version: version, Revision: revision, Created: created,
			Cmd:         []string{"--config", "/etc/concord/coordinator/coordinator.yaml"},
			Ports:       []string{"7443/tcp", "9100/tcp"},
			Description: "Concord federated learning coordinator"},
		{Name: "site-agent", Binary: filepath.Join(binDir, "site-agent"), Probe: filepath.Join(binDir, ProbeName), CACerts: caCerts, Version: version, Revision: revision, Created: created,
			Cmd:         []string{"run", "--config", "/etc/concord/agent/agent.yaml"},
			Ports:       []string{"9101/tcp"},
			Description: "Concord site agent for a hospital"},
	}
}

// Ref is the image's name and tag: concord/NAME:VERSION.
func Ref(s Spec) string { return "concord/" + s.Name + ":" + s.Version }

// ArchiveName is the file name of the image's oci-archive.
func ArchiveName(s Spec) string { return "concord-" + s.Name + "-" + s.Version + ".oci.tar" }
