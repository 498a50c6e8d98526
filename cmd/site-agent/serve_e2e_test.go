package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testfhir"
	"github.com/concord-fl/concord/serving"
)

// buildAgent builds this command's binary for tests that must kill it.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "site-agent")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServe runs `site-agent serve` and waits until it listens.
func startServe(t *testing.T, bin, cfg string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "serving ") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("site-agent serve exited: %s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("site-agent serve not ready: %s", stderr.String())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	return cmd
}

func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics: %s", name, b)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func waitMetric(t *testing.T, addr, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, addr, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed at %g, want %g", name, metricValue(t, addr, name), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stowFile(t *testing.T, addr, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	status, body, err := serving.PostSTOW(context.Background(), "http://"+addr, b)
	if err != nil || status != http.StatusOK {
		t.Fatalf("STOW-RS %d %v: %s", status, err, body)
	}
}

// TestServeLosesNothingToKill9 runs the real binary: with the FHIR
// endpoint down, studies are accepted and queued; the agent is killed
// with SIGKILL; restarted with the endpoint up, it delivers every result
// once.
func TestServeLosesNothingToKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	files := []string{"CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"}
	for i, f := range files {
		files[i] = testenv.Shared(t, filepath.Join("data", "dicom", "pydicom", f))
	}
	bin := buildAgent(t)
	listen := freeAddr(t)
	block := func(fhir string) string {
		return fmt.Sprintf("  listen: %s\n  fhir_base: %s\n  patient_id_system: urn:oid:1.2.3\n  retry_min: 50ms\n  retry_max: 200ms\n", listen, fhir)
	}
	cfg, _ := serveSite(t, block("http://"+freeAddr(t)+"/fhir/R4"))
	var out, errb bytes.Buffer
	if code := run([]string{"models", "approve", "v1", "--config", cfg, "--by", "dr-test"}, &out, &errb); code != 0 {
		t.Fatalf("approve: %s", errb.String())
	}
	agent := startServe(t, bin, cfg)
	for _, f := range files {
		stowFile(t, listen, f)
	}
	waitMetric(t, listen, "concord_serve_queue_depth", float64(len(files)))
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()

	base := testfhir.Start(t)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(text, []byte("  listen:"))
	if err := os.WriteFile(cfg, append(text[:i:i], block(base)...), 0o644); err != nil {
		t.Fatal(err)
	}
	startServe(t, bin, cfg)
	waitMetric(t, listen, "concord_serve_queue_depth", 0)
	if d := metricValue(t, listen, "concord_serve_delivered_total"); d != float64(len(files)) {
		t.Fatalf("delivered %g, want %d", d, len(files))
	}
	resp, err := http.Get(base + "/DiagnosticReport?_count=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var bundle struct {
		Entry []json.RawMessage `json:"entry"`
	}
	json.NewDecoder(resp.Body).Decode(&bundle)
	if len(bundle.Entry) != len(files) {
		t.Fatalf("%d DiagnosticReports on the FHIR server, want %d (one per study, none lost, none twice)", len(bundle.Entry), len(files))
	}
}
