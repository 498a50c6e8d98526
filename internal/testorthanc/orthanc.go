// Package testorthanc runs Debian's Orthanc as a PACS for tests: a
// subprocess with its own config and storage in a temporary folder, on
// free loopback ports, with the DICOMweb plugin loaded and authentication
// off. It is started by the test that needs it and stopped at its end;
// Orthanc's log is shown when the test fails. Where Orthanc is not
// installed the test fails under CI and is skipped elsewhere (testenv).
package testorthanc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
)

// Where Debian installs Orthanc (package orthanc) and its DICOMweb plugin
// (orthanc-dicomweb); CONCORD_ORTHANC and CONCORD_ORTHANC_DICOMWEB
// override them.
const (
	debianBinary = "/usr/sbin/Orthanc"
	debianPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
)

// Options configure Start.
type Options struct {
	// AET is Orthanc's own application entity title (default ORTHANC).
	AET string
	// Modalities are the DICOM peers Orthanc knows, by AE title: where a
	// C-MOVE to that title sends the instances (host:port). Orthanc answers
	// C-FIND, C-GET and C-MOVE only from AE titles it knows.
	Modalities map[string]string
	// CheckCalledAET makes Orthanc refuse associations that call another
	// AE title than its own (A-ASSOCIATE-RJ), as a strict PACS does.
	CheckCalledAET bool
}

// Orthanc is a running Orthanc.
type Orthanc struct {
	// URL is the REST root, http://127.0.0.1:port.
	URL string
	// DICOMweb is the DICOMweb root, URL + "/dicom-web".
	DICOMweb string
	// DICOMPort is the DIMSE port; AET its title.
	DICOMPort int
	AET       string

	cmd  *exec.Cmd
	log  *testenv.Buffer
	done chan struct{}
}

// Start runs an Orthanc for tb and stops it when tb ends.
func Start(tb testing.TB, opts Options) *Orthanc {
	tb.Helper()
	bin, plugin := envOr("CONCORD_ORTHANC", debianBinary), envOr("CONCORD_ORTHANC_DICOMWEB", debianPlugin)
	for _, p := range []string{bin, plugin} {
		if _, err := os.Stat(p); err != nil {
			testenv.Missing(tb, "Orthanc is not installed (%v): apt-get install orthanc orthanc-dicomweb", err)
		}
	}
	if opts.AET == "" {
		opts.AET = "ORTHANC"
	}
	// A free port found by listening can be taken by another process
	// before Orthanc binds it: try again with new ports.
	var lastErr error
	for try := 0; try < 3; try++ {
		o, err := start(tb, bin, plugin, opts)
		if err == nil {
			return o
		}
		lastErr = err
	}
	tb.Fatalf("start Orthanc: %v", lastErr)
	return nil
}

func start(tb testing.TB, bin, plugin string, opts Options) (*Orthanc, error) {
	dir := tb.TempDir()
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	mods := map[string][]any{}
	for aet, hp := range opts.Modalities {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("modality %s: %w", aet, err)
		}
		mods[aet] = []any{aet, host, port}
	}
	cfg := map[string]any{
		"Name": "concord-test", "StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "storage"),
		"HttpPort": ports[0], "DicomPort": ports[1], "DicomAet": opts.AET,
		"RemoteAccessAllowed": false, "AuthenticationEnabled": false,
		"HttpCompressionEnabled": false, "StorageCompression": false, "SaveJobs": false,
		"DicomCheckCalledAet": opts.CheckCalledAET, "DicomAlwaysAllowEcho": true, "DicomAlwaysAllowStore": true, "UnknownSopClassAccepted": true, "ConcurrentJobs": 1,
		"DicomModalities": mods,
		"Plugins":         []string{plugin},
		"DicomWeb":        map[string]any{"Enable": true, "Root": "/dicom-web/", "EnableWado": false},
	}
	raw, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return nil, err
	}
	o := &Orthanc{URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), DICOMPort: ports[1], AET: opts.AET,
		log: &testenv.Buffer{Limit: 4 << 20}, done: make(chan struct{})}
	o.DICOMweb = o.URL + "/dicom-web"
	o.cmd = exec.Command(bin, cfgPath)
	o.cmd.Stdout, o.cmd.Stderr = o.log, o.log
	if err := o.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { o.cmd.Wait(); close(o.done) }()
	tb.Cleanup(func() {
		o.stop()
		if tb.Failed() {
			tb.Logf("Orthanc's log:\n%s", o.log.Tail(8000))
		}
	})
	if err := o.waitReady(30 * time.Second); err != nil {
		o.stop()
		return nil, fmt.Errorf("%w; its log:\n%s", err, o.log.Tail(4000))
	}
	return o, nil
}

func (o *Orthanc) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-o.done:
			return errors.New("Orthanc exited")
		default:
		}
		resp, err := http.Get(o.URL + "/system")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("Orthanc did not answer within %v", within)
}

func (o *Orthanc) stop() {
	select {
	case <-o.done:
		return
	default:
	}
	// Killed, not asked to stop: its storage is thrown away, and a clean
	// stop takes Orthanc seconds.
	o.cmd.Process.Kill()
	<-o.done
}

// Upload stores files in Orthanc through its REST API (POST /instances)
// and fails the test if Orthanc refuses one.
func (o *Orthanc) Upload(tb testing.TB, files ...string) {
	tb.Helper()
	for _, f := range files {
		if err := o.TryUpload(f); err != nil {
			tb.Fatal(err)
		}
	}
}

// TryUpload stores one file, returning Orthanc's refusal as an error.
func (o *Orthanc) TryUpload(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.URL+"/instances", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/dicom")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("upload %s to Orthanc: %w", filepath.Base(file), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload %s to Orthanc: %s: %s", filepath.Base(file), resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// SetModality tells Orthanc where the DICOM peer aet listens (host:port):
// where a C-MOVE to aet sends the instances. It replaces the entry of the
// same title, e.g. one given in Options.Modalities.
func (o *Orthanc) SetModality(aet, hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("modality %s: %w", aet, err)
	}
	body, _ := json.Marshal(map[string]any{"AET": aet, "Host": host, "Port": port})
	req, _ := http.NewRequest(http.MethodPut, o.URL+"/modalities/"+aet, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("configure modality %s in Orthanc: %w", aet, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("configure modality %s in Orthanc: %s", aet, resp.Status)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
