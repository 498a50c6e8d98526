package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/concord-fl/concord/coordinator"
	"github.com/concord-fl/concord/internal/backup"
	"github.com/concord-fl/concord/privacy/audit"
)

// restore is `coordinator --config X --restore FILE`: with the
// coordinator stopped, it checks the backup (a coordinator database whose
// audit log verifies under this coordinator's audit key) and moves it into
// state_dir atomically, keeping the database it replaces. Then start the
// coordinator as usual.
func restore(configPath, file string, stdout, stderr io.Writer) int {
	fc, err := readConfig(configPath)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator: %v\n", err)
		return 1
	}
	base := filepath.Dir(configPath)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if fc.StateDir == "" {
		fmt.Fprintln(stderr, "coordinator: config: state_dir is required")
		return 1
	}
	o := coordinator.RestoreOptions{Backup: file, StatePath: filepath.Join(abs(fc.StateDir), "coordinator.db"), AuditOrigin: fc.Audit.Origin}
	if fc.Audit.Key != "" {
		if o.AuditKey, err = audit.ReadKeyFile(abs(fc.Audit.Key)); err != nil {
			fmt.Fprintf(stderr, "coordinator: config: audit.key: %v\n", err)
			return 1
		}
	}
	res, err := coordinator.Restore(o)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator: restore: %v\n", err)
		if errors.Is(err, backup.ErrInUse) {
			fmt.Fprintln(stderr, "stop the coordinator (systemctl stop concord-coordinator) and run the restore again")
		}
		return 1
	}
	sum, _ := backup.FileSHA256(o.StatePath)
	fmt.Fprintf(stdout, "restored %s into %s: %d jobs, audit log of %d records verified (sha256 %s)\n", file, o.StatePath, res.Jobs, res.AuditRecords, sum)
	if res.Kept != "" {
		fmt.Fprintf(stdout, "the database it replaced is kept as %s\n", res.Kept)
	}
	fmt.Fprintln(stdout, "start the coordinator to resume from it")
	return 0
}
