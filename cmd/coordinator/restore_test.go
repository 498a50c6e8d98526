package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/privacy/audit"
)

// TestRestoreRefusesWhatItCannotVerify: --restore needs the audit key the
// backup's log is verified with, and a coordinator database; the state
// folder is untouched when either is missing. (sim's
// TestCoordinatorHealthBackupRestore restores a real backup.)
func TestRestoreRefusesWhatItCannotVerify(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "coordinator.yaml")
	if err := os.WriteFile(config, []byte("state_dir: state\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bogus := filepath.Join(dir, "not-a-backup")
	if err := os.WriteFile(bogus, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	restore := func() (int, string) {
		var out, errb bytes.Buffer
		code := run([]string{"--config", config, "--restore", bogus}, &out, &errb)
		return code, errb.String()
	}
	if code, errs := restore(); code != 1 || !strings.Contains(errs, "restore the coordinator's audit-key.pem") {
		t.Errorf("without an audit key: exit %d: %s", code, errs)
	}
	k, err := audit.GenerateKey(nil, "coordinator")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := audit.WriteKeyFile(filepath.Join(dir, "state", "audit-key.pem"), k); err != nil {
		t.Fatal(err)
	}
	if code, errs := restore(); code != 1 || !strings.Contains(errs, "not a readable database") {
		t.Errorf("a file that is no database: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "coordinator.db")); !os.IsNotExist(err) {
		t.Errorf("a failed restore left a database: %v", err)
	}
}
