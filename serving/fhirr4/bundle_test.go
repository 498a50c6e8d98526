package fhirr4

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/concord-fl/concord/internal/testfhir"
	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	bcr "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

func mustBundle(t *testing.T, r Result) []byte {
	t.Helper()
	b, err := Bundle(r)
	if err != nil {
		t.Fatalf("Bundle: %v", err)
	}
	return b
}

// readBundle parses with google/fhir's validating unmarshaller, which checks
// cardinalities and required fields on its own.
func readBundle(t *testing.T, b []byte) *bcr.Bundle {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	m, err := u.Unmarshal(b)
	if err != nil {
		t.Fatalf("unmarshal bundle: %v", err)
	}
	return m.(*bcr.ContainedResource).GetBundle()
}

func TestBundleIsDeterministic(t *testing.T) {
	for _, r := range []Result{classification(), segmentation()} {
		a, b := mustBundle(t, r), mustBundle(t, r)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two Bundles of the same Result differ", r.Task)
		}
		other := r
		other.ID += "-x"
		if bytes.Equal(a, mustBundle(t, other)) {
			t.Errorf("%s: another ID gives the same Bundle", r.Task)
		}
	}
}

func TestBundleShape(t *testing.T) {
	for _, r := range []Result{classification(), segmentation()} {
		t.Run(r.Task, func(t *testing.T) {
			b := readBundle(t, mustBundle(t, r))
			want := []string{"Patient", "Device", "Observation", "DiagnosticReport", "Provenance"}
			if len(b.GetEntry()) != len(want) {
				t.Fatalf("%d entries, want %d", len(b.GetEntry()), len(want))
			}
			fullURL := map[string]string{}
			for i, e := range b.GetEntry() {
				if got := e.GetRequest().GetUrl().GetValue(); got != want[i] {
					t.Errorf("entry %d posts to %q, want %q", i, got, want[i])
				}
				if e.GetRequest().GetIfNoneExist().GetValue() == "" {
					t.Errorf("entry %d (%s) is not a conditional create", i, want[i])
				}
				fullURL[want[i]] = e.GetFullUrl().GetValue()
			}
			obs := b.Entry[2].GetResource().GetObservation()
			rep := b.Entry[3].GetResource().GetDiagnosticReport()
			prov := b.Entry[4].GetResource().GetProvenance()
			for name, sec := range map[string]string{
				"Observation":      obs.GetMeta().GetSecurity()[0].GetCode().GetValue(),
				"DiagnosticReport": rep.GetMeta().GetSecurity()[0].GetCode().GetValue(),
			} {
				if sec != SecurityAIAST {
					t.Errorf("%s meta.security %q, want %q", name, sec, SecurityAIAST)
				}
			}
			if len(obs.GetPerformer()) != 0 {
				t.Error("Observation has a performer; R4 names the model in Provenance and Observation.device")
			}
			if got := obs.GetDevice().GetUri().GetValue(); got != fullURL["Device"] {
				t.Errorf("Observation.device %q, want the Device entry %q", got, fullURL["Device"])
			}
			if got := prov.GetAgent()[0].GetWho().GetUri().GetValue(); got != fullURL["Device"] {
				t.Errorf("Provenance agent %q, want the Device entry %q", got, fullURL["Device"])
			}
			if got := rep.GetResult()[0].GetUri().GetValue(); got != fullURL["Observation"] {
				t.Errorf("DiagnosticReport.result %q, want the Observation entry", got)
			}
			if got := rep.GetImagingStudy()[0].GetIdentifier().GetValue().GetValue(); got != "urn:oid:"+r.StudyInstanceUID {
				t.Errorf("ImagingStudy reference %q, want the Study Instance UID", got)
			}
		})
	}
}

// entries splits a Bundle's JSON into its resources.
func entries(t *testing.T, bundle []byte) [][]byte {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = e.Resource
	}
	return out
}

// TestBundleValidatesAgainstR4 runs Medplum's validator over the Bundle and
// each resource in it. The only findings it may make are warnings that the
// in-Bundle urn:uuid references are not yet typed references: the server
// resolves them (TestDeliver validates the stored resources with none).
func TestBundleValidatesAgainstR4(t *testing.T) {
	var all [][]byte
	flat := segmentation() // a 2-D image: areas, not volumes
	flat.SegmentVolumesML, flat.SegmentAreasMM2 = nil, map[string]float64{"nodule": 140.5}
	for _, r := range []Result{classification(), segmentation(), flat} {
		b := mustBundle(t, r)
		all = append(append(all, b), entries(t, b)...)
	}
	for i, issues := range testfhir.Check(t, all...) { // one validator run for all
		for _, is := range issues {
			if is.Severity != "warning" || !bytes.Contains([]byte(is.Text), []byte(`got "urn:uuid:`)) {
				t.Errorf("resource %d: %s", i, is)
			}
		}
	}
}

func TestByIdentifierEscapesSearchCharacters(t *testing.T) {
	got := byIdentifier("urn:oid:1.2.3", `MRN,7|a$b\c`)
	want := "identifier=" + url.QueryEscape(`urn:oid:1.2.3|MRN\,7\|a\$b\\c`)
	if got != want {
		t.Errorf("byIdentifier = %s, want %s", got, want)
	}
}
