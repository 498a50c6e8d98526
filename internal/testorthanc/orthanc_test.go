package testorthanc

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartWithModalitiesAndDICOMweb(t *testing.T) {
	o := Start(t, Options{AET: "TESTPACS", Modalities: map[string]string{"AGENT": "127.0.0.1:11112"}})
	resp, err := http.Get(o.URL + "/modalities?expand")
	if err != nil {
		t.Fatal(err)
	}
	var mods map[string]struct {
		AET  string
		Host string
		Port int
	}
	err = json.NewDecoder(resp.Body).Decode(&mods)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m := mods["AGENT"]; m.AET != "AGENT" || m.Host != "127.0.0.1" || m.Port != 11112 {
		t.Errorf("modalities %+v", mods)
	}
	resp, err = http.Get(o.DICOMweb + "/studies")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Errorf("DICOMweb /studies: %s", resp.Status)
	}
	bad := filepath.Join(t.TempDir(), "not-dicom.dcm")
	os.WriteFile(bad, []byte("hello"), 0o600)
	if err := o.TryUpload(bad); err == nil || !strings.Contains(err.Error(), "not-dicom.dcm") {
		t.Errorf("uploading a non-DICOM file: %v", err)
	}
	if o.AET != "TESTPACS" || o.DICOMPort == 0 {
		t.Errorf("AET %q, DICOM port %d", o.AET, o.DICOMPort)
	}
}
