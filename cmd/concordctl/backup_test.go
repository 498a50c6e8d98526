package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// backupAdmin serves Backup as the coordinator does: the size first, the
// data in chunks, the SHA-256 last (announced, which a test may falsify).
type backupAdmin struct {
	pb.UnimplementedAdminServer
	data      []byte
	announced string
}

func (b *backupAdmin) Backup(_ *pb.BackupRequest, stream pb.Admin_BackupServer) error {
	half := len(b.data) / 2
	for i, part := range [][]byte{b.data[:half], b.data[half:]} {
		ch := &pb.BackupChunk{Data: part}
		if i == 0 {
			ch.Size = int64(len(b.data))
		}
		if err := stream.Send(ch); err != nil {
			return err
		}
	}
	return stream.Send(&pb.BackupChunk{Sha256: b.announced})
}

func TestBackupCommand(t *testing.T) {
	data := bytes.Repeat([]byte("bbolt page "), 5000)
	sum := sha256.Sum256(data)
	good := &backupAdmin{data: data, announced: hex.EncodeToString(sum[:])}
	out := filepath.Join(t.TempDir(), "coordinator.backup")
	code, stdout, errs := runCtl("--config", serve(t, good), "backup", "--out", out)
	if code != 0 || !strings.Contains(stdout, "sha256 "+good.announced) || !strings.Contains(stdout, "--restore "+out) {
		t.Fatalf("backup: exit %d: %s%s", code, stdout, errs)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("backup file: %d bytes, %v", len(got), err)
	}

	damaged := &backupAdmin{data: data, announced: strings.Repeat("0", 64)}
	out2 := filepath.Join(t.TempDir(), "damaged.backup")
	code, _, errs = runCtl("--config", serve(t, damaged), "backup", "--out", out2)
	if code != 1 || !strings.Contains(errs, "arrived damaged") {
		t.Fatalf("damaged backup: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Errorf("a damaged backup was left at %s", out2)
	}
	if code, _, errs = runCtl("--config", serve(t, good), "backup"); code != 1 || !strings.Contains(errs, "give --out FILE") {
		t.Errorf("no --out: exit %d: %s", code, errs)
	}
}
