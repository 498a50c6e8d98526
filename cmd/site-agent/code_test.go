package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestModelsApproveCode: approve-code records the hash and who approved it,
// models list shows it with its log, revoke-code withdraws it, and what is
// not a SHA-256 is refused.
func TestModelsApproveCode(t *testing.T) {
	p, _ := serveSite(t, "")
	sha := strings.Repeat("0f", 32)
	var out, errb bytes.Buffer
	if code := run([]string{"models", "approve-code", sha, "--config", p, "--by", "dr-house"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "approved custom model code sha256 "+sha+" by dr-house") {
		t.Fatalf("approve-code: %d %q %q", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run([]string{"models", "approve-code", "net.py", "--config", p, "--by", "dr-house"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "not a SHA-256") {
		t.Fatalf("approving a file name: %d %q", code, errb.String())
	}
	list := func() modelsListJSON {
		t.Helper()
		out.Reset()
		if code := run([]string{"models", "list", "--config", p, "--json"}, &out, &errb); code != 0 {
			t.Fatalf("list: %d %s", code, errb.String())
		}
		var got modelsListJSON
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(); len(got.CodeApprovals) != 1 || got.CodeApprovals[0].SHA256 != sha || got.CodeApprovals[0].By != "dr-house" || len(got.CodeLog) != 1 {
		t.Fatalf("code approvals %+v, log %+v", got.CodeApprovals, got.CodeLog)
	}
	if code := run([]string{"models", "revoke-code", sha, "--config", p, "--by", "dr-house"}, &out, &errb); code != 0 {
		t.Fatalf("revoke-code: %d %s", code, errb.String())
	}
	if got := list(); len(got.CodeApprovals) != 0 || len(got.CodeLog) != 2 || got.CodeLog[1].Event != "revoke-code" {
		t.Fatalf("after revocation: approvals %+v, log %+v", got.CodeApprovals, got.CodeLog)
	}
}

// TestAllowCPUCustomNeedsExternalTrainer: the option is refused where
// nothing would act on it.
func TestAllowCPUCustomNeedsExternalTrainer(t *testing.T) {
	p, _ := serveSite(t, "")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(raw, "trainer: {allow_cpu_custom: true}\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"run", "--config", p}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "trainer.allow_cpu_custom applies to an external trainer") {
		t.Fatalf("run: %d %q", code, errb.String())
	}
}
