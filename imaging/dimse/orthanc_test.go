package dimse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
)

// orthanc is a real Orthanc (Debian's) started for the tests, with
// called-AE-title checking on so that rejection can be tested.
type orthanc struct {
	aet       string
	dicomAddr string
	httpURL   string
	cmd       *exec.Cmd
	log       *bytes.Buffer
}

const (
	orthancAET = "ORTHANC"
	ourAET     = "CONCORD"
)

var (
	sharedOrthanc     *orthanc
	sharedOrthancErr  error
	sharedOrthancOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedOrthanc != nil {
		sharedOrthanc.stop()
	}
	os.Exit(code)
}

// loadedOrthanc is one Orthanc for the package's tests, loaded with the
// test corpus; it is stopped by TestMain.
func loadedOrthanc(t *testing.T) *orthanc {
	t.Helper()
	bin, err := exec.LookPath("Orthanc")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/Orthanc"); serr == nil {
			bin = "/usr/sbin/Orthanc"
		} else {
			testenv.Missing(t, "Orthanc not found (apt-get install orthanc)")
		}
	}
	files := corpus(t)
	sharedOrthancOnce.Do(func() {
		sharedOrthanc, sharedOrthancErr = startOrthanc(bin)
		if sharedOrthancErr == nil {
			for _, f := range files {
				if sharedOrthancErr = sharedOrthanc.upload(f.path); sharedOrthancErr != nil {
					break
				}
			}
		}
	})
	if sharedOrthancErr != nil {
		if sharedOrthanc != nil {
			t.Logf("Orthanc log:\n%s", sharedOrthanc.log)
		}
		t.Fatal(sharedOrthancErr)
	}
	return sharedOrthanc
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startOrthanc(bin string) (*orthanc, error) {
	dir, err := os.MkdirTemp("", "concord-orthanc-")
	if err != nil {
		return nil, err
	}
	dicomPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"Name":                  "concord-dimse-test",
		"StorageDirectory":      filepath.Join(dir, "db"),
		"IndexDirectory":        filepath.Join(dir, "db"),
		"DicomAet":              orthancAET,
		"DicomPort":             dicomPort,
		"HttpPort":              httpPort,
		"RemoteAccessAllowed":   true,
		"AuthenticationEnabled": false,
		"DicomCheckCalledAet":   true,
		"DicomAlwaysAllowEcho":  true,
		"DicomAlwaysAllowStore": true,
		"DicomModalities": map[string]any{
			// The port is set per C-MOVE test through the REST API.
			"concord": []any{ourAET, "127.0.0.1", 1},
		},
		"Plugins":  []string{},
		"SaveJobs": false,
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	o := &orthanc{
		aet:       orthancAET,
		dicomAddr: "127.0.0.1:" + strconv.Itoa(dicomPort),
		httpURL:   "http://127.0.0.1:" + strconv.Itoa(httpPort),
		log:       &bytes.Buffer{},
	}
	o.cmd = exec.Command(bin, path)
	o.cmd.Stdout, o.cmd.Stderr = o.log, o.log
	o.cmd.Dir = dir
	dieWithTest(o.cmd)
	if err := o.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start Orthanc: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(o.httpURL + "/system")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o, nil
			}
		}
		if time.Now().After(deadline) {
			o.stop()
			return o, fmt.Errorf("Orthanc did not answer on %s within 30s: %v", o.httpURL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *orthanc) stop() {
	if o.cmd.Process != nil {
		_ = o.cmd.Process.Kill()
		_, _ = o.cmd.Process.Wait()
	}
	if dir := o.cmd.Dir; dir != "" {
		_ = os.RemoveAll(dir)
	}
}

func (o *orthanc) upload(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	resp, err := http.Post(o.httpURL+"/instances", "application/dicom", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("upload %s: %w", filepath.Base(path), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload %s: Orthanc answered %s", filepath.Base(path), resp.Status)
	}
	return nil
}

// setModalityPort tells Orthanc where our storage SCP listens.
func (o *orthanc) setModalityPort(port int) error {
	body, _ := json.Marshal(map[string]any{"AET": ourAET, "Host": "127.0.0.1", "Port": port})
	req, _ := http.NewRequest(http.MethodPut, o.httpURL+"/modalities/concord", bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("configure modality: Orthanc answered %s", resp.Status)
	}
	return nil
}

// url is the DICOM URL of this Orthanc, with extra query parameters.
func (o *orthanc) url(called, query string) *url.URL {
	u := &url.URL{Scheme: "dicom", User: url.User(called), Host: o.dicomAddr, RawQuery: query}
	return u
}
