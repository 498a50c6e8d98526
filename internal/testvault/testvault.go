// Package testvault starts a real HashiCorp Vault in dev mode for a test,
// set up by deploy/vault/setup.sh exactly as an operator would set up a
// production Vault, and hands out AppRole credentials from it.
//
// The Vault binary is $CONCORD_VAULT (.ci/run builds it from tools/vault),
// else concord-vault-1.21.0 in $(go env GOPATH)/bin, else vault on PATH.
// Without one, a test skips, except where CI is set: there it fails, so CI
// can never pass without having run the Vault tests.
//
// Dev mode keeps everything in memory and serves plain HTTP on loopback;
// each Start gets its own server on a free port, its own root token, and a
// HOME of its own (dev mode writes ~/.vault-token).
package testvault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Vault is a running dev-mode Vault.
type Vault struct {
	Addr  string // http://127.0.0.1:PORT
	Token string // root token
	bin   string
	home  string
	setup string
	t     testing.TB
}

// Binary finds the Vault binary, or returns "".
func Binary() string {
	if p := os.Getenv("CONCORD_VAULT"); p != "" {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if h, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(h, "go")
		}
	}
	if p := filepath.Join(gopath, "bin", "concord-vault-1.21.0"); gopath != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p
	}
	return ""
}

// Start starts a Vault and runs `setup.sh init` on it. It is stopped when
// the test ends.
func Start(t testing.TB) *Vault {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Vault binary: set CONCORD_VAULT (.ci/run builds it from tools/vault)")
		}
		t.Skip("no Vault binary: set CONCORD_VAULT or build tools/vault (make vault)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Vault binary: %v", err)
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		v, err := start(t, bin)
		if err == nil {
			v.Run("init")
			return v
		}
		lastErr = err
	}
	t.Fatalf("start vault: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string) (*Vault, error) {
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	var tok [16]byte
	rand.Read(tok[:])
	home := t.TempDir()
	v := &Vault{Addr: fmt.Sprintf("http://127.0.0.1:%d", port), Token: "root-" + hex.EncodeToString(tok[:]), bin: bin, home: home,
		setup: setupScript(), t: t}
	logf, err := os.Create(filepath.Join(home, "vault.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+v.Token, fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-log-level=warn")
	cmd.Env = append(os.Environ(), "HOME="+home, "VAULT_ADDR=", "VAULT_TOKEN=")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(home, "vault.log"))
			return nil, fmt.Errorf("vault exited at start (%v): %s", err, tail(log))
		default:
		}
		if healthy(v.Addr) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("vault not healthy within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(stop)
	return v, nil
}

func healthy(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/sys/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePortPair finds p such that p and p+1 (dev mode's cluster port) are
// free on loopback.
func freePortPair() (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free pair of loopback ports")
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// setupScript is deploy/vault/setup.sh of this repository.
func setupScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "vault", "setup.sh")
}

// Run runs deploy/vault/setup.sh with args as the root token and returns
// its trimmed standard output; a failure fails the test.
func (v *Vault) Run(args ...string) string {
	v.t.Helper()
	out, err := v.TryRun(args...)
	if err != nil {
		v.t.Fatal(err)
	}
	return out
}

// TryRun is Run returning the error.
func (v *Vault) TryRun(args ...string) (string, error) {
	cmd := exec.Command("sh", append([]string{v.setup}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+v.home, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token, "VAULT="+v.bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("setup.sh %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// SecretIDFile writes a fresh single-use secret id of role (e.g.
// site-st-marys) to a new file and returns its path.
func (v *Vault) SecretIDFile(role string) string {
	v.t.Helper()
	p := filepath.Join(v.t.TempDir(), "secret-id")
	if err := os.WriteFile(p, []byte(v.Run("secret-id", role)+"\n"), 0o600); err != nil {
		v.t.Fatal(err)
	}
	return p
}
