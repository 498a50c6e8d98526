// Package version holds the version string the Concord binaries print.
// Release builds stamp it once for every binary with
//
//	go build -ldflags "-X github.com/concord-fl/concord/internal/version.Stamp=v1.2.3"
//
// and a plain `go build` falls back to the version of the package a binary
// runs (coordinator.Version, siteagent.Version) or to Default.
package version

// Stamp is set at link time; empty in a plain build.
var Stamp string

// Default is the version of the binaries that have no package version of
// their own (concordctl, concord-sim, concord-bench).
const Default = "0.1.0"

// Of returns Stamp when the build set it, else fallback.
func Of(fallback string) string {
	if Stamp != "" {
		return Stamp
	}
	return fallback
}
