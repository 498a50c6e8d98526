package fhirr4

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testfhir"
	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	dt "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcr "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// fhirServer is a test's view of the real FHIR server testfhir.Start runs.
type fhirServer struct {
	t    *testing.T
	base string
	um   *jsonformat.Unmarshaller
	m    *jsonformat.Marshaller
}

func startServer(t *testing.T) *fhirServer {
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	return &fhirServer{t: t, base: testfhir.Start(t), um: um, m: m}
}

// get reads one resource or search result from the server.
func (s *fhirServer) get(path string) *bcr.ContainedResource {
	s.t.Helper()
	resp, err := http.Get(s.base + "/" + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		s.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	m, err := s.um.Unmarshal(body)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return m.(*bcr.ContainedResource)
}

// search returns the resources a search finds.
func (s *fhirServer) search(resourceType string, query url.Values) []*bcr.ContainedResource {
	s.t.Helper()
	b := s.get(resourceType + "?" + query.Encode()).GetBundle()
	var out []*bcr.ContainedResource
	for _, e := range b.GetEntry() {
		out = append(out, e.GetResource())
	}
	return out
}

// only asserts a search finds exactly one resource and returns it.
func (s *fhirServer) only(resourceType string, query url.Values) *bcr.ContainedResource {
	s.t.Helper()
	found := s.search(resourceType, query)
	if len(found) != 1 {
		s.t.Fatalf("%s?%s finds %d, want 1", resourceType, query.Encode(), len(found))
	}
	return found[0]
}

// ref gives a reference's literal form, Type/id.
func ref(t *testing.T, r *dt.Reference) string {
	t.Helper()
	c := &dt.Reference{Reference: r.GetReference()}
	if err := jsonformat.DenormalizeReference(c); err != nil {
		t.Fatal(err)
	}
	return c.GetUri().GetValue()
}

func idOf(resourceType string, cr *bcr.ContainedResource) string {
	var id *dt.Id
	switch resourceType {
	case "Patient":
		id = cr.GetPatient().GetId()
	case "Device":
		id = cr.GetDevice().GetId()
	case "Observation":
		id = cr.GetObservation().GetId()
	case "DiagnosticReport":
		id = cr.GetDiagnosticReport().GetId()
	case "Provenance":
		id = cr.GetProvenance().GetId()
	}
	return resourceType + "/" + id.GetValue()
}

func token(system, value string) string { return system + "|" + value }

// stored is what the server holds for one Result, found by search.
type stored struct {
	patient, device, finding, report, provenance *bcr.ContainedResource
}

// readBack finds a Result's resources the way a hospital would: the report
// by its identifier, the rest by following its links. It fails when any is
// missing, duplicated or not linked to the others.
func (s *fhirServer) readBack(r Result) stored {
	t := s.t
	t.Helper()
	var st stored
	st.report = s.only("DiagnosticReport", url.Values{"identifier": {token(ResultIDSystem, r.ID)}})
	rep := st.report.GetDiagnosticReport()
	st.patient = s.only("Patient", url.Values{"identifier": {token(r.PatientIDSystem, r.PatientID)}})
	if got, want := ref(t, rep.GetSubject()), idOf("Patient", st.patient); got != want {
		t.Errorf("report subject %s, want %s", got, want)
	}
	if n := len(s.search("DiagnosticReport", url.Values{"subject": {idOf("Patient", st.patient)}})); n != 1 {
		t.Errorf("the patient has %d reports, want 1", n)
	}
	st.finding = s.get(ref(t, rep.GetResult()[0]))
	if got := s.only("Observation", url.Values{"identifier": {token(ResultIDSystem, r.ID+"/finding")}}); idOf("Observation", got) != idOf("Observation", st.finding) {
		t.Errorf("report links %s, identifier search finds %s", idOf("Observation", st.finding), idOf("Observation", got))
	}
	st.device = s.only("Device", url.Values{"identifier": {token(DeviceIDSystem, r.Model.DeviceUID)}})
	obs := st.finding.GetObservation()
	if got, want := ref(t, obs.GetDevice()), idOf("Device", st.device); got != want {
		t.Errorf("Observation.device %s, want %s", got, want)
	}
	if got, want := ref(t, obs.GetSubject()), idOf("Patient", st.patient); got != want {
		t.Errorf("Observation.subject %s, want %s", got, want)
	}
	st.provenance = s.only("Provenance", url.Values{"target": {idOf("DiagnosticReport", st.report)}})
	prov := st.provenance.GetProvenance()
	if got, want := ref(t, prov.GetAgent()[0].GetWho()), idOf("Device", st.device); got != want {
		t.Errorf("Provenance agent %s, want %s", got, want)
	}
	targets := map[string]bool{}
	for _, tg := range prov.GetTarget() {
		targets[ref(t, tg)] = true
	}
	if !targets[idOf("Observation", st.finding)] {
		t.Errorf("Provenance targets %v lack the Observation", targets)
	}
	for _, sec := range [][]*dt.Coding{rep.GetMeta().GetSecurity(), obs.GetMeta().GetSecurity()} {
		if len(sec) == 0 || sec[0].GetCode().GetValue() != SecurityAIAST {
			t.Errorf("stored meta.security %v, want %s", sec, SecurityAIAST)
		}
	}
	return st
}

func (s *fhirServer) json(cr *bcr.ContainedResource) []byte {
	s.t.Helper()
	b, err := s.m.Marshal(cr)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// count is how many resources of a type the server holds.
func (s *fhirServer) count(resourceType string) int {
	s.t.Helper()
	return len(s.search(resourceType, url.Values{"_count": {"1000"}}))
}

// TestDeliver runs everything that needs the FHIR server on one server:
// starting one costs seconds.
func TestDeliver(t *testing.T) {
	srv := startServer(t)
	// First, while the server is empty: a refused transaction stores nothing.
	t.Run("refused", func(t *testing.T) { testRefusedResource(t, srv) })
	client := &Client{Base: srv.base, HTTP: &http.Client{Timeout: 30 * time.Second}}
	ctx := context.Background()
	results := []Result{classification(), segmentation()}
	bundles := make([][]byte, len(results))
	for i, r := range results {
		bundles[i] = mustBundle(t, r)
		if err := client.Deliver(ctx, bundles[i]); err != nil {
			t.Fatalf("%s: Deliver: %v", r.Task, err)
		}
	}
	types := []string{"Patient", "Device", "Observation", "DiagnosticReport", "Provenance"}
	counts := map[string]int{}
	for _, ty := range types {
		counts[ty] = srv.count(ty)
		if counts[ty] != len(results) {
			t.Errorf("%d %s after delivering %d results, want %d", counts[ty], ty, len(results), len(results))
		}
	}
	// The stored resources carry resolved references: now the R4 validator
	// must find nothing at all.
	var stored [][]byte
	for _, r := range results {
		st := srv.readBack(r)
		stored = append(stored, srv.json(st.patient), srv.json(st.device),
			srv.json(st.finding), srv.json(st.report), srv.json(st.provenance))
	}
	for i, issues := range testfhir.Check(t, stored...) {
		for _, is := range issues {
			t.Errorf("%s: stored %s: %s", results[i/len(types)].Task, types[i%len(types)], is)
		}
	}

	// Delivering again, as after a lost response, creates nothing new.
	for i := range results {
		if err := client.Deliver(ctx, bundles[i]); err != nil {
			t.Fatalf("second Deliver: %v", err)
		}
	}
	for _, ty := range types {
		if n := srv.count(ty); n != counts[ty] {
			t.Errorf("%d %s after delivering the same bundles again, want %d", n, ty, counts[ty])
		}
	}
	for _, r := range results {
		srv.readBack(r)
	}

	// A second result for the same patient and model reuses both.
	again := classification()
	again.ID = "res-0003"
	if err := client.Deliver(ctx, mustBundle(t, again)); err != nil {
		t.Fatal(err)
	}
	if n := srv.count("Patient"); n != counts["Patient"] {
		t.Errorf("%d patients after a second result for the same patient, want %d", n, counts["Patient"])
	}
	if n := srv.count("Device"); n != counts["Device"] {
		t.Errorf("%d devices after a second result from the same model, want %d", n, counts["Device"])
	}
	if n := srv.count("DiagnosticReport"); n != counts["DiagnosticReport"]+1 {
		t.Errorf("%d reports, want %d", n, counts["DiagnosticReport"]+1)
	}
}

// testRefusedResource: a resource the server finds invalid is a
// permanent error that carries the server's reason, and nothing of the
// transaction is stored.
func testRefusedResource(t *testing.T, srv *fhirServer) {
	client := &Client{Base: srv.base}
	var b map[string]any
	if err := json.Unmarshal(mustBundle(t, classification()), &b); err != nil {
		t.Fatal(err)
	}
	obs := b["entry"].([]any)[2].(map[string]any)["resource"].(map[string]any)
	delete(obs, "code") // Observation.code is 1..1
	bad, _ := json.Marshal(b)
	err := client.Deliver(context.Background(), bad)
	var de *DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("Deliver: %v, want *DeliveryError", err)
	}
	if de.Retryable || de.Status != http.StatusBadRequest {
		t.Errorf("got status %d retryable %v, want 400 permanent", de.Status, de.Retryable)
	}
	if !strings.Contains(de.Reason, "Observation.code") {
		t.Errorf("reason %q does not name Observation.code", de.Reason)
	}
	for _, ty := range []string{"Patient", "Observation", "DiagnosticReport"} {
		if n := srv.count(ty); n != 0 {
			t.Errorf("%d %s stored from a refused transaction", n, ty)
		}
	}
}

func TestDeliverServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	client := &Client{Base: "http://" + addr + "/fhir/R4"}
	err = client.Deliver(context.Background(), mustBundle(t, classification()))
	var de *DeliveryError
	if !errors.As(err, &de) || !de.Retryable || de.Status != 0 {
		t.Fatalf("Deliver to a closed port: %#v, want a retryable DeliveryError without status", err)
	}
	if !strings.Contains(de.Reason, "refused") {
		t.Errorf("reason %q does not say the connection was refused", de.Reason)
	}
}

// TestDeliverStatus covers what a gateway in front of the FHIR server may
// answer: overload and outages are retryable, a login page is not success.
func TestDeliverStatus(t *testing.T) {
	cases := []struct {
		status    int
		body      string
		retryable bool
		reason    string
	}{
		{503, "", true, "Service Unavailable"},
		{429, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled","diagnostics":"slow down"}]}`, true, "slow down"},
		{502, "<html>bad gateway</html>", true, "bad gateway"},
		{401, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","details":{"text":"token expired"}}]}`, false, "token expired"},
		{200, "<html>please log in</html>", false, "not a FHIR transaction-response"},
	}
	for _, tc := range cases {
		gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "Bearer t0k" {
				t.Errorf("Authorization %q, want the configured header", got)
			}
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}))
		client := &Client{Base: gw.URL, Header: http.Header{"Authorization": {"Bearer t0k"}}}
		err := client.Deliver(context.Background(), mustBundle(t, classification()))
		gw.Close()
		var de *DeliveryError
		if !errors.As(err, &de) {
			t.Fatalf("%d: %v, want *DeliveryError", tc.status, err)
		}
		if de.Status != tc.status || de.Retryable != tc.retryable || !strings.Contains(de.Reason, tc.reason) {
			t.Errorf("%d: got %+v, want retryable %v and reason containing %q", tc.status, de, tc.retryable, tc.reason)
		}
	}
}

func TestDeliverRefusesBadBase(t *testing.T) {
	for _, base := range []string{"", "ftp://x/fhir", "http://x/fhir?a=1", "/fhir"} {
		err := (&Client{Base: base}).Deliver(context.Background(), []byte("{}"))
		var de *DeliveryError
		if !errors.As(err, &de) || de.Retryable || !strings.Contains(de.Reason, "Client.Base") {
			t.Errorf("base %q: %v, want a permanent error about Client.Base", base, err)
		}
	}
}

func TestDeliverCancelled(t *testing.T) {
	release := make(chan struct{})
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // answers only once the test is over
	}))
	defer gw.Close()
	defer close(release) // before Close, which waits for the handler
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := (&Client{Base: gw.URL}).Deliver(ctx, mustBundle(t, classification()))
	var de *DeliveryError
	if !errors.As(err, &de) || !de.Retryable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver past its deadline: %v, want a retryable DeliveryError wrapping the deadline", err)
	}
}

// TestDeliverBoundsResponse: an endless answer is cut at the bound.
func TestDeliverBoundsResponse(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte(" "), 64<<10)
		for range (maxResponseBytes / len(chunk)) + 2 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer gw.Close()
	err := (&Client{Base: gw.URL}).Deliver(context.Background(), mustBundle(t, classification()))
	var de *DeliveryError
	if !errors.As(err, &de) || !strings.Contains(de.Reason, "response over") {
		t.Fatalf("Deliver with an oversized answer: %v, want a DeliveryError saying the response is over the bound", err)
	}
}
