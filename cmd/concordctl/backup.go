package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/internal/backup"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

const backupHelp = `Take an online backup of the coordinator's state database (jobs, models, the
audit log) while it runs, as an admin. The coordinator snapshots its database in
one read transaction, so the copy is consistent; the backup is recorded in the
audit log with its SHA-256, which is printed here too.

The coordinator's audit key (state_dir/audit-key.pem) is not in the backup: keep
a copy of it apart, as a secret. To restore, stop the coordinator and run
  coordinator --config coordinator.yaml --restore FILE`

func (g *globals) backupCommand() *cli.Command {
	var out *string
	return g.remote(&cli.Command{Name: "backup", Args: "--out FILE [--json]",
		Synopsis: "take an online backup of the coordinator's state database", Help: backupHelp}, 0,
		func(fs *flag.FlagSet) { out = fs.String("out", "", "backup `FILE` to write") },
		func(ctx context.Context, cl *client, asJSON bool, _ []string, stdout io.Writer) error {
			if *out == "" {
				return errors.New("give --out FILE: where to write the backup")
			}
			stream, err := cl.admin.Backup(ctx, &pb.BackupRequest{})
			if err != nil {
				return err
			}
			r := &backupReader{stream: stream}
			n, sum, err := backup.WriteFile(*out, r)
			if err != nil {
				return err
			}
			if r.sha256 != sum || n != r.size {
				os.Remove(*out)
				return fmt.Errorf("the backup arrived damaged (%d of %d bytes, sha256 %s, the coordinator's %s): run the backup again", n, r.size, sum, r.sha256)
			}
			if asJSON {
				return writeJSON(stdout, map[string]any{"file": *out, "bytes": n, "sha256": sum})
			}
			fmt.Fprintf(stdout, "wrote %s (%d bytes, sha256 %s)\nrestore it with: coordinator --config coordinator.yaml --restore %s (coordinator stopped)\n", *out, n, sum, *out)
			return nil
		})
}

// backupReader reads the data of a Backup stream and keeps the size and
// SHA-256 the coordinator announced, to compare with what was written.
type backupReader struct {
	stream pb.Admin_BackupClient
	buf    []byte
	size   int64
	sha256 string
	done   bool
}

func (r *backupReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		ch, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			if r.sha256 == "" {
				return 0, errors.New("the coordinator ended the backup early: run it again")
			}
			r.done = true
			continue
		}
		if err != nil {
			return 0, err
		}
		if ch.Size > 0 {
			r.size = ch.Size
		}
		if ch.Sha256 != "" {
			r.sha256 = ch.Sha256
		}
		r.buf = ch.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
