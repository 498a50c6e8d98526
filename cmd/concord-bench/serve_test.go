package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testfhir"
	"github.com/concord-fl/concord/serving"
)

func TestServeBench(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"serve"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--fhir is required") {
		t.Fatalf("without --fhir: %d %q", code, errb.String())
	}
	file := testenv.Shared(t, filepath.Join("data", "dicom", "pydicom", "CT_small.dcm"))
	base := testfhir.Start(t)
	out.Reset()
	if code := run([]string{"serve", "--fhir", base, "--file", file, "--studies", "3", "--size", "32", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res serving.BenchResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	if res.Studies != 3 || res.StudiesPerS <= 0 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms || res.FHIRP50Ms <= 0 {
		t.Fatalf("result %+v", res)
	}
}
