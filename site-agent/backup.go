package siteagent

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/internal/backup"
)

// The agent's state database holds what a hospital must not lose: its
// privacy ledgers (the epsilon already spent cannot be spent again), the
// log of what left the site, the receipts, the witness state and the
// sealed key material. A backup is a consistent bbolt snapshot:
//
//   - while the agent runs, `site-agent backup` asks it on its management
//     listener (POST /backup), since the running agent holds the database's
//     lock and no other process may open it;
//   - when the agent is stopped, the command opens the database read-only.
//
// A restore (RestoreState) needs the agent stopped. The sealed keys stay
// sealed with the key passphrase, which is not in the backup.

// BackupSHA256Header carries the snapshot's SHA-256 on POST /backup.
const BackupSHA256Header = "X-Concord-Backup-Sha256"

// stateBuckets are the buckets every agent database has; a backup lacking
// one is not an agent's.
var stateBuckets = []string{string(bSubmissions), string(bKeys), string(bPrivacy), string(bReceipts)}

// serveBackup streams a snapshot of the state database. Only a POST from
// loopback is served, whatever address the listener is bound to: the
// snapshot holds the privacy ledger and sealed keys, which belong on the
// agent's host and its backup system, not on the management network.
func (a *Agent) serveBackup(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST to take a backup", http.StatusMethodNotAllowed)
		return
	}
	if !fromThisHost(r) {
		http.Error(w, "backups are served to this host only: run site-agent backup on the agent's host", http.StatusForbidden)
		return
	}
	snap, err := backup.Take(a.st.db, a.cfg.StateDir)
	if err != nil {
		a.log.Error("backup failed", "err", err)
		http.Error(w, "the snapshot failed: check the free space in state_dir", http.StatusInternalServerError)
		return
	}
	defer snap.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(snap.Size, 10))
	w.Header().Set(BackupSHA256Header, snap.SHA256)
	if _, err := io.Copy(w, snap); err != nil {
		a.log.Warn("backup not delivered", "err", err)
		return
	}
	a.log.Info("state database backed up", "bytes", snap.Size, "sha256", snap.SHA256)
}

// fromThisHost says whether r came from the agent's own host: over
// loopback, or to a management address from that same address (a client on
// this host dialling the listener's own IP).
func fromThisHost(r *http.Request) bool {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	remote := net.ParseIP(host)
	if remote == nil {
		return false
	}
	if remote.IsLoopback() {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lhost, _, _ := net.SplitHostPort(local.String())
	return remote.Equal(net.ParseIP(lhost))
}

// SnapshotState takes a snapshot of a stopped agent's state database,
// opened read-only, into a temporary file in tmpDir. A running agent holds
// the database: the error then wraps ErrStateLocked.
func SnapshotState(stateDir, tmpDir string, timeout time.Duration) (*backup.Snapshot, error) {
	db, err := openStateReadOnly(stateDir, timeout)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return backup.Take(db, tmpDir)
}

// checkState checks that db is an agent's state database.
func checkState(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error { return backup.RequireBuckets(tx, stateBuckets...) })
}

// VerifyBackup checks that file is a readable agent state database.
func VerifyBackup(file string) error { return backup.Verify(file, checkState) }

// RestoreState installs a backup as the state database in stateDir, after
// checking it, keeping the database it replaces (whose new name it
// returns). It refuses while an agent runs on stateDir (backup.ErrInUse).
func RestoreState(file, stateDir string) (kept string, err error) {
	kept, err = backup.Install(file, filepath.Join(stateDir, "agent.db"), checkState)
	if err != nil {
		return kept, fmt.Errorf("restore the agent state: %w", err)
	}
	return kept, nil
}
