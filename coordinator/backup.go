package coordinator

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/internal/backup"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// EvBackup records an online backup of the state database: who took it,
// its size and SHA-256, so a restored database can be traced to the
// backup it came from.
const EvBackup = "coordinator.backup"

// Backup streams a consistent snapshot of the state database (bbolt's hot
// backup) while rounds go on. The state database holds everything that
// must survive: jobs, uploads, models and the audit log, so one file
// restores the coordinator; its audit key (audit-key.pem) is not in it and
// is kept by the operator apart, as a secret.
func (a *adminService) Backup(_ *pb.BackupRequest, stream pb.Admin_BackupServer) error {
	c := a.c
	id, err := a.caller(stream.Context())
	if err != nil {
		return err
	}
	// A checkpoint of the whole log first: the backup's log is then
	// verified on restore against a signed tree head, not records alone.
	c.publishCheckpoint()
	snap, err := backup.Take(c.st.db, filepath.Dir(c.cfg.StatePath))
	if err != nil {
		c.log.Error("backup failed", "err", err)
		return status.Errorf(codes.Internal, "%v (check the free space in the coordinator's state_dir)", err)
	}
	defer snap.Close()
	buf := make([]byte, ChunkSize)
	first := true
	for {
		n, rerr := io.ReadFull(snap, buf)
		if n > 0 || first {
			ch := &pb.BackupChunk{Data: buf[:n]}
			if first {
				ch.Size, first = snap.Size, false
			}
			if err := within(stream.Context(), c.cfg.StreamTimeout, "sending the backup", func() error { return stream.Send(ch) }); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return status.Errorf(codes.Internal, "read the backup snapshot: %v", rerr)
		}
	}
	end := &pb.BackupChunk{Sha256: snap.SHA256}
	if err := within(stream.Context(), c.cfg.StreamTimeout, "sending the backup", func() error { return stream.Send(end) }); err != nil {
		return err
	}
	c.bus.emit(Event{Kind: EvBackup, Actor: id.String(),
		Detail: fmt.Sprintf("online backup of the state database taken by %s (%d bytes, sha256 %s)", id, snap.Size, snap.SHA256)})
	return nil
}

// RestoreOptions say what to restore and how to check it.
type RestoreOptions struct {
	// Backup is the file concordctl backup wrote.
	Backup string
	// StatePath is the database to replace (state_dir/coordinator.db).
	StatePath string
	// AuditKey is the coordinator's audit key; nil means audit-key.pem
	// beside StatePath, which must exist: the audit log in the backup is
	// verified against it.
	AuditKey *audit.Key
	// AuditOrigin names the audit log (default "concord/audit").
	AuditOrigin string
}

// RestoreResult describes a restored database.
type RestoreResult struct {
	AuditRecords uint64
	Jobs         int
	// Kept is where the replaced database was moved ("" if there was none).
	Kept string
}

// Restore replaces a stopped coordinator's state database with a backup,
// after checking that the backup is a coordinator database and that the
// audit log in it verifies (every signature, the Merkle tree, the latest
// checkpoint) under this coordinator's audit key. It refuses while a
// coordinator runs on StatePath (backup.ErrInUse).
func Restore(o RestoreOptions) (RestoreResult, error) {
	if o.AuditOrigin == "" {
		o.AuditOrigin = "concord/audit"
	}
	key := o.AuditKey
	if key == nil {
		path := filepath.Join(filepath.Dir(o.StatePath), "audit-key.pem")
		var err error
		if key, err = audit.ReadKeyFile(path); errors.Is(err, fs.ErrNotExist) {
			return RestoreResult{}, fmt.Errorf("no audit key at %s: restore the coordinator's audit-key.pem from its key backup first (the backup's audit log is verified with it)", path)
		} else if err != nil {
			return RestoreResult{}, fmt.Errorf("audit key %s: %w", path, err)
		}
	}
	var res RestoreResult
	check := func(db *bolt.DB) error {
		if err := db.View(func(tx *bolt.Tx) error {
			names := make([]string, 0, len(allBuckets)+1)
			for _, b := range allBuckets {
				names = append(names, string(b))
			}
			if err := backup.RequireBuckets(tx, append(names, auditBucket)...); err != nil {
				return err
			}
			res.Jobs = tx.Bucket(bJobs).Stats().KeyN
			return nil
		}); err != nil {
			return err
		}
		var err error
		res.AuditRecords, err = verifyAuditIn(db, key, o.AuditOrigin)
		return err
	}
	kept, err := backup.Install(o.Backup, o.StatePath, check)
	res.Kept = kept
	return res, err
}

// verifyAuditIn verifies the audit log stored in db as the coordinator
// verifies its own at start-up, and returns its size.
func verifyAuditIn(db *bolt.DB, key *audit.Key, origin string) (uint64, error) {
	bs, err := audit.NewBoltStore(db, auditBucket)
	if err != nil {
		return 0, err
	}
	t, err := audit.NewTrust(origin, []string{key.Verifier()}, nil, nil, 0)
	if err != nil {
		return 0, err
	}
	if err := audit.VerifyStore(bs, t); err != nil {
		return 0, fmt.Errorf("its audit log does not verify under this coordinator's audit key and origin %q: %w", origin, err)
	}
	return bs.Size()
}
