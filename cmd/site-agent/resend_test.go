package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/serving"
	"github.com/concord-fl/concord/serving/fhirr4"
)

// refusing is a FHIR endpoint that refuses every result for good, as a
// server does whose profile the results do not meet.
type refusing struct{}

func (refusing) Deliver(context.Context, []byte) error {
	return &fhirr4.DeliveryError{Status: 422, Reason: "Observation.code: not in the required value set"}
}

// TestModelsResend serves a study against an endpoint that refuses it, so
// its result is parked, then sends it back to the queue with `site-agent
// models resend`.
func TestModelsResend(t *testing.T) {
	p, _ := serveSite(t, "")
	var out, errb bytes.Buffer
	if code := run([]string{"models", "approve", "v1", "--config", p, "--by", "dr-house"}, &out, &errb); code != 0 {
		t.Fatalf("approve: %d %s", code, errb.String())
	}
	state := filepath.Join(filepath.Dir(p), "state")
	resultID := parkOne(t, p, state)

	for _, args := range [][]string{{}, {"--all", resultID}, {"a", "b"}} {
		errb.Reset()
		if code := run(append([]string{"models", "resend", "--config", p}, args...), &out, &errb); code != 2 {
			t.Errorf("resend %v: exit %d, want 2 (usage)", args, code)
		}
	}
	errb.Reset()
	if code := run([]string{"models", "resend", "--config", p, "0123"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no parked result") {
		t.Fatalf("resend of an unknown id: %d %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"models", "resend", "--config", p, resultID}, &out, &errb); code != 0 || !strings.Contains(out.String(), "queued again: result "+resultID+" (fhir)") {
		t.Fatalf("resend: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"models", "list", "--config", p, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("list: %d %s", code, errb.String())
	}
	var got modelsListJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Counts.Queued != 1 || len(got.Parked) != 0 || got.Counts.Resent != 1 {
		t.Fatalf("after resend: counts %+v, parked %+v; want 1 queued, none parked", got.Counts, got.Parked)
	}
	out.Reset()
	if code := run([]string{"models", "resend", "--config", p, "--all"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "0 parked item(s)") {
		t.Fatalf("resend --all with nothing parked: %d %q", code, out.String())
	}
}

// parkOne serves one CT study with the approved version against a
// refusing endpoint until its result is parked, and returns its id.
func parkOne(t *testing.T, cfgPath, state string) string {
	t.Helper()
	st, err := serveConfig(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	store, err := serving.OpenStore(state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ap, err := store.Approvals()
	if err != nil {
		t.Fatal(err)
	}
	m, err := serving.LoadApproved(st.modelsDir, st.trust, ap)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serving.New(serving.Config{Listen: "127.0.0.1:0", StateDir: state, Classes: []string{"normal", "pneumonia"},
		PatientIDSystem: "urn:oid:1.2.3", Model: m, Store: store, Sender: refusing{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	ct, err := os.ReadFile(testenv.Shared(t, "data/dicom/pydicom/CT_small.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if status, b, err := serving.PostSTOW(ctx, "http://"+srv.Addr().String(), ct); err != nil || status != 200 {
		t.Fatalf("STOW-RS: %d %v %s", status, err, b)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		parked, err := store.Parked()
		if err != nil {
			t.Fatal(err)
		}
		if len(parked) == 1 {
			return parked[0].ResultID
		}
		if time.Now().After(deadline) {
			t.Fatal("the refused result was not parked")
		}
	}
}
