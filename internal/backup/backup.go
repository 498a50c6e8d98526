// Package backup takes online snapshots of a daemon's bbolt database and
// installs a verified snapshot in place of a stopped daemon's database.
// The coordinator and the site agent share it, so that their backups and
// restores behave alike: consistent while the daemon runs, checked before
// anything is replaced, replaced atomically, the old database kept.
package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrInUse is returned (wrapped) by Install when a running daemon holds
// the database that would be replaced.
var ErrInUse = errors.New("the database is in use by a running daemon")

// Snapshot is a consistent copy of a database in a temporary file, ready
// to be streamed; Close removes it.
type Snapshot struct {
	f      *os.File
	Size   int64
	SHA256 string
}

// Take copies db with bbolt's hot backup (Tx.WriteTo inside one read
// transaction) into a temporary file in dir. The copy goes to local disk
// first, not straight to a client, because bbolt writers that grow the
// file wait for open read transactions: a slow network reader must not
// stall rounds. dir should be on the database's file system (the state
// folder), which has room for the database already.
func Take(db *bolt.DB, dir string) (*Snapshot, error) {
	f, err := os.CreateTemp(dir, ".backup-*.db")
	if err != nil {
		return nil, fmt.Errorf("backup: temporary file: %w", err)
	}
	s := &Snapshot{f: f}
	h := sha256.New()
	err = db.View(func(tx *bolt.Tx) error {
		n, err := tx.WriteTo(io.MultiWriter(f, h))
		s.Size = n
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("backup: snapshot of the database: %w", err)
	}
	s.SHA256 = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// Read reads the snapshot from its start.
func (s *Snapshot) Read(p []byte) (int, error) { return s.f.Read(p) }

// Close removes the temporary file.
func (s *Snapshot) Close() error {
	s.f.Close()
	return os.Remove(s.f.Name())
}

// WriteFile writes r to path atomically (a temporary file beside it,
// synced, then renamed) and returns its size and SHA-256 in hex.
func WriteFile(path string, r io.Reader) (int64, string, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, "", err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return 0, "", fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(dir)
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// FileSHA256 is the SHA-256 in hex of the file at path, to compare with
// the one printed when the backup was taken.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return hashOf(f, sha256.New())
}

func hashOf(r io.Reader, h hash.Hash) (string, error) {
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RequireBuckets checks that tx has every named top-level bucket: a file
// that is a bbolt database of something else fails here.
func RequireBuckets(tx *bolt.Tx, names ...string) error {
	for _, n := range names {
		if tx.Bucket([]byte(n)) == nil {
			return fmt.Errorf("it has no %q bucket: it is not a backup of this kind of database", n)
		}
	}
	return nil
}

// Verify opens a copy of the backup at src and runs check on it, leaving
// src untouched. It is the dry run of Install.
func Verify(src string, check func(*bolt.DB) error) error {
	tmp, err := copyBeside(src, filepath.Join(os.TempDir(), "concord-verify.db"))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return verifyAt(src, tmp, check)
}

// Install replaces the database at dst with the backup at src, after
// checking the backup with check (on a copy opened read-write, since some
// checks open stores that create their buckets). It refuses while a daemon
// holds dst (ErrInUse). An existing dst is kept beside it, renamed
// *.before-restore-TIME, and that name is returned ("" when there was none).
func Install(src, dst string, check func(*bolt.DB) error) (kept string, err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", err
	}
	tmp, err := copyBeside(src, dst)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp) // a no-op once renamed into place
	if err := verifyAt(src, tmp, check); err != nil {
		return "", err
	}
	if _, err := os.Stat(dst); err == nil {
		db, err := bolt.Open(dst, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
		if errors.Is(err, berrors.ErrTimeout) {
			return "", fmt.Errorf("%w: %s is locked; stop the daemon, then restore", ErrInUse, dst)
		}
		if err == nil {
			db.Close()
		} // a damaged database is what a restore replaces: keep it aside all the same
		kept = dst + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(dst, kept); err != nil {
			return "", fmt.Errorf("keep the current database aside: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return kept, fmt.Errorf("move the restored database into place: %w", err)
	}
	syncDir(filepath.Dir(dst))
	return kept, nil
}

func verifyAt(src, tmp string, check func(*bolt.DB) error) error {
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("backup %s is not a readable database: %w", src, err)
	}
	if check != nil {
		err = check(db)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup %s fails verification: %w", src, err)
	}
	return nil
}

// copyBeside copies src to a new temporary file in dst's folder (so that
// the final rename is atomic) and syncs it.
func copyBeside(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open backup: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(out.Name(), 0o600)
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("copy backup: %w", err)
	}
	return out.Name(), nil
}

// syncDir makes a rename in dir durable; a failure only weakens that.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
