package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/privacy/audit"
)

// auditFiles writes what an auditor receives: a bundle of n records whose
// checkpoint both sites cosigned, and the consortium's trust file. It
// returns their paths and the log, to grow it.
type auditFiles struct {
	dir, bundle, trust string
	log                *audit.Log
	key                *audit.Key
	witnesses          []*audit.Witness
	trustV             *audit.Trust
}

func newAuditFiles(t *testing.T, origin string, n int) *auditFiles {
	t.Helper()
	a := &auditFiles{dir: t.TempDir()}
	var err error
	if a.key, err = audit.GenerateKey(nil, "coordinator"); err != nil {
		t.Fatal(err)
	}
	var wkeys []*audit.Key
	var wv []string
	for _, name := range []string{"st-marys", "city-general"} {
		k, err := audit.GenerateKey(nil, name)
		if err != nil {
			t.Fatal(err)
		}
		wkeys, wv = append(wkeys, k), append(wv, k.Verifier())
	}
	if a.trustV, err = audit.NewTrust(origin, []string{a.key.Verifier()}, nil, wv, 0); err != nil {
		t.Fatal(err)
	}
	for _, k := range wkeys {
		w, err := audit.NewWitness(k, a.trustV, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.witnesses = append(a.witnesses, w)
	}
	if a.log, err = audit.Open(audit.NewMemStore(), origin); err != nil {
		t.Fatal(err)
	}
	a.trust = filepath.Join(a.dir, "trust.txt")
	if err := os.WriteFile(a.trust, a.trustV.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	a.grow(t, n)
	return a
}

// grow appends n records, has them witnessed and writes the bundle anew;
// it returns the new checkpoint.
func (a *auditFiles) grow(t *testing.T, n int) []byte {
	t.Helper()
	kinds := []string{"job.submitted", "task.sent", "upload.accepted"}
	actors := []string{"admin:alice", "coordinator", "site:st-marys"}
	for range n {
		i := int(a.log.Size())
		r := audit.Record{Time: time.Date(2026, 11, 2, 9, 0, i, 0, time.UTC), Kind: kinds[i%3], Actor: actors[i%3], JobID: "7"}
		if _, err := a.log.Append(r, a.key); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := a.log.SignCheckpoint(a.key)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range a.witnesses {
		p, err := a.log.ConsistencyProof(w.Last().Size, a.log.Size())
		if err != nil {
			t.Fatal(err)
		}
		cs, err := w.Update(signed, p)
		if err != nil {
			t.Fatal(err)
		}
		if signed, err = audit.AddCosignatures(signed, cs); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.log.Publish(signed); err != nil {
		t.Fatal(err)
	}
	b, err := audit.Export(a.log, a.trustV, audit.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	a.bundle = filepath.Join(a.dir, "audit.json")
	if err := os.WriteFile(a.bundle, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestAuditVerify(t *testing.T) {
	a := newAuditFiles(t, "north.example.org/audit", 20)

	code, out, errs := runCtl("audit", "verify", a.bundle, "--trust", a.trust)
	if code != 0 || !strings.Contains(out, "valid: 20 records of north.example.org/audit (the whole log)") ||
		!strings.Contains(out, "witnessed by: st-marys, city-general (2 required)") || strings.Contains(out, "WARNING") {
		t.Fatalf("valid bundle: exit %d\n%s%s", code, out, errs)
	}
	// The product's spelling, --file, and the global --json.
	code, out, _ = runCtl("--json", "audit", "verify", "--file", a.bundle, "--trust", a.trust)
	var res auditResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.Valid || res.Report.Records != 20 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	// Without a trust file: valid, with a warning.
	if code, out, _ := runCtl("audit", "verify", a.bundle); code != 0 || !strings.Contains(out, "WARNING: no --trust file") {
		t.Fatalf("no trust: exit %d\n%s", code, out)
	}

	// One byte of record 17's signature changed: exit 1, record 17 named.
	data, _ := os.ReadFile(a.bundle)
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	rec := raw["records"].([]any)[17].(map[string]any)
	leaf, _ := base64.StdEncoding.DecodeString(rec["leaf"].(string))
	leaf[len(leaf)-1] ^= 1
	rec["leaf"] = base64.StdEncoding.EncodeToString(leaf)
	bad := filepath.Join(a.dir, "bad.json")
	tampered, _ := json.Marshal(raw)
	os.WriteFile(bad, tampered, 0o644)
	code, _, errs = runCtl("audit", "verify", bad, "--trust", a.trust)
	if code != 1 || !strings.Contains(errs, "INVALID: record 17 (upload.accepted by site:st-marys): signature invalid") {
		t.Fatalf("tampered: exit %d\n%s", code, errs)
	}
	code, out, _ = runCtl("audit", "verify", bad, "--trust", a.trust, "--json")
	res = auditResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Valid || res.Record == nil || *res.Record != 17 {
		t.Fatalf("tampered --json: exit %d %v\n%s", code, err, out)
	}

	// A truncated file.
	cut := filepath.Join(a.dir, "cut.json")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	if code, _, errs := runCtl("audit", "verify", cut, "--trust", a.trust); code != 1 || !strings.Contains(errs, "truncated") {
		t.Fatalf("cut: exit %d\n%s", code, errs)
	}

	// Another consortium's bundle.
	other := newAuditFiles(t, "north.example.org/audit", 3)
	if code, _, errs := runCtl("audit", "verify", other.bundle, "--trust", a.trust); code != 1 || !strings.Contains(errs, "another consortium") {
		t.Fatalf("other consortium: exit %d\n%s", code, errs)
	}

	// The last records deleted: the old bundle against the newer checkpoint.
	old := filepath.Join(a.dir, "old.json")
	os.WriteFile(old, data, 0o644)
	newer := a.grow(t, 5)
	cp := filepath.Join(a.dir, "checkpoint.txt")
	os.WriteFile(cp, newer, 0o644)
	if code, _, errs := runCtl("audit", "verify", old, "--trust", a.trust, "--checkpoint", cp); code != 1 || !strings.Contains(errs, "records 20 to 24 were deleted") {
		t.Fatalf("truncated log: exit %d\n%s", code, errs)
	}
	if code, out, errs := runCtl("audit", "verify", a.bundle, "--trust", a.trust, "--checkpoint", cp); code != 0 || !strings.Contains(out, "extends the earlier checkpoints of sizes 25") {
		t.Fatalf("current log: exit %d\n%s%s", code, out, errs)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"audit", "verify"},
		{"audit", "verify", "a", "b"},
		{"audit", "verify", "--bogus", "x"},
	} {
		if code, _, _ := runCtl(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := runCtl("audit", "verify", filepath.Join(t.TempDir(), "none.json")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d %s", code, errs)
	}
	if code, out, _ := runCtl("help", "audit"); code != 0 || !strings.Contains(out, "verify") {
		t.Errorf("help: %d %s", code, out)
	}
}
