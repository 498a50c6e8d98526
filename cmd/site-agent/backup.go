package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/internal/backup"
	siteagent "github.com/concord-fl/concord/site-agent"
)

const backupHelp = `Write a consistent copy of the agent's state database (privacy ledgers, the log of what
left the site, receipts, witness state, sealed keys) to FILE, and print its SHA-256.

While the agent runs it holds the database, so the copy is asked of the agent on its management
listener (metrics_listen in agent.yaml; POST /backup, answered to this host only). When the agent
is stopped, the database is opened read-only. The key passphrase is not in the backup: the sealed
keys in it need the same passphrase after a restore.`

const restoreHelp = `With the agent stopped: check that FILE is an agent state database (site-agent backup), then
install it as state_dir/agent.db atomically. The database it replaces is kept beside it
(agent.db.before-restore-TIME). Start the agent afterwards; site-agent privacy and site-agent sent
show the restored ledger and log.`

func backupCmd(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file`")
	out := fs.String("out", "", "backup `FILE` to write")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	if *out == "" {
		return c.Usagef(stderr, "give --out FILE: where to write the backup")
	}
	fc, abs, err := readConfig(*configPath)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if fc.StateDir == "" {
		return c.Fail(stderr, fmt.Errorf("config %s has no state_dir", *configPath))
	}
	from := "the running agent"
	size, sum, err := backupOnline(fc.MetricsListen, *out)
	if errors.Is(err, errNotRunning) {
		from = "the stopped agent's state (read-only)"
		size, sum, err = backupOffline(abs(fc.StateDir), *out)
	}
	if err != nil {
		return c.Fail(stderr, err)
	}
	if err := siteagent.VerifyBackup(*out); err != nil {
		return c.Fail(stderr, err)
	}
	fmt.Fprintf(stdout, "wrote %s from %s (%d bytes, sha256 %s)\nrestore it with: site-agent restore --config %s %s (agent stopped)\n",
		*out, from, size, sum, *configPath, *out)
	return 0
}

// errNotRunning: no agent answers on the management listener.
var errNotRunning = errors.New("no agent answers")

// backupOnline asks a running agent for a snapshot.
func backupOnline(listen, out string) (int64, string, error) {
	if listen == "" {
		return 0, "", errNotRunning
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return 0, "", fmt.Errorf("metrics_listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(host, port)+"/backup", nil)
	if err != nil {
		return 0, "", err
	}
	// A connection of its own: one kept alive from an earlier call could
	// belong to an agent that has since stopped.
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return 0, "", errNotRunning
	}
	if err != nil {
		return 0, "", fmt.Errorf("ask the running agent for a backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, "", fmt.Errorf("the agent refused the backup: %s %s", resp.Status, msg)
	}
	n, sum, err := backup.WriteFile(out, resp.Body)
	if err != nil {
		return 0, "", err
	}
	want := resp.Header.Get(siteagent.BackupSHA256Header)
	if wantN, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); sum != want || n != wantN {
		return 0, "", fmt.Errorf("the backup arrived damaged (sha256 %s, the agent's %s): run it again", sum, want)
	}
	return n, sum, nil
}

func backupOffline(stateDir, out string) (int64, string, error) {
	snap, err := siteagent.SnapshotState(stateDir, filepath.Dir(out), 2*time.Second)
	if errors.Is(err, siteagent.ErrStateLocked) {
		return 0, "", fmt.Errorf("%w; a running agent serves backups on its management listener: set metrics_listen in agent.yaml (e.g. 127.0.0.1:9101) and restart it, or stop it", err)
	}
	if err != nil {
		return 0, "", err
	}
	defer snap.Close()
	return backup.WriteFile(out, snap)
}

func restoreCmd(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	configPath := fs.String("config", "agent.yaml", "agent config `file`: its state_dir is restored")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.Usagef(stderr, "give the backup FILE to restore")
	}
	fc, abs, err := readConfig(*configPath)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if fc.StateDir == "" {
		return c.Fail(stderr, fmt.Errorf("config %s has no state_dir", *configPath))
	}
	kept, err := siteagent.RestoreState(pos[0], abs(fc.StateDir))
	if errors.Is(err, backup.ErrInUse) {
		return c.Fail(stderr, fmt.Errorf("%w (stop the agent: systemctl stop concord-site-agent)", err))
	}
	if err != nil {
		return c.Fail(stderr, err)
	}
	sum, _ := backup.FileSHA256(pos[0])
	fmt.Fprintf(stdout, "restored %s (sha256 %s) into %s\n", pos[0], sum, abs(fc.StateDir))
	if kept != "" {
		fmt.Fprintf(stdout, "the database it replaced is kept as %s\n", kept)
	}
	return 0
}

// checkListen validates metrics_listen: host:port, the port a number.
func checkListen(s string) error {
	if s == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		var p int
		p, err = strconv.Atoi(port)
		if err == nil && (p < 0 || p > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil {
		return fmt.Errorf("metrics_listen %q: give host:port, e.g. 127.0.0.1:9101 (loopback) or an address on the management network (%v)", s, err)
	}
	return nil
}
