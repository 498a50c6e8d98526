package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// seededKey is a key from a fixed seed, so signatures are reproducible.
func seededKey(t *testing.T, name string, seed byte) *Key {
	t.Helper()
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)), name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The version 1 formats are pinned: a record's leaf, a signed and
// cosigned checkpoint and a key's verifier string. A change here breaks
// every log already written; it needs a new version, not -update.
func TestGoldenFormats(t *testing.T) {
	logKey, wKey := seededKey(t, "coordinator", 1), seededKey(t, "st-marys", 2)
	r := Record{Time: time.Date(2026, 11, 2, 9, 30, 0, 5, time.UTC), Kind: "upload.accepted", Actor: "site:st-marys",
		JobID: "7", Round: 3, Site: "st-marys", Detail: "update accepted",
		Data: []DataField{{Name: "update", Size: 123456, SHA256: sha256.Sum256([]byte("update"))}}}
	l, err := Open(NewMemStore(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if r, err = l.Append(r, logKey); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := NewTrust(testOrigin, []string{logKey.Verifier()}, nil, []string{wKey.Verifier()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWitness(wKey, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := l.SignCheckpoint(logKey)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := w.Update(cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err = AddCosignatures(cp, cs); err != nil {
		t.Fatal(err)
	}

	var got strings.Builder
	fmt.Fprintf(&got, "log key: %s\nwitness key: %s\n\nrecord 2 leaf:\n%s\n\ncheckpoint:\n%s", logKey.Verifier(), wKey.Verifier(),
		hex.EncodeToString(r.Leaf()), cp)
	path := filepath.Join("testdata", "formats-v1.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("formats changed:\n got:\n%s\nwant:\n%s", got.String(), want)
	}
	// And the pinned bytes still verify.
	if _, who, err := OpenCheckpoint(want[bytes.Index(want, []byte("checkpoint:\n"))+len("checkpoint:\n"):], tr); err != nil || len(who) != 1 {
		t.Errorf("the golden checkpoint does not verify: %v", err)
	}
}

// FuzzVerifyBundle: no bundle file, however made, panics the verifier,
// and a file that verifies names a tree its checkpoint signed.
func FuzzVerifyBundle(f *testing.F) {
	fx := newFixture(f, NewMemStore(), "st-marys")
	fx.add(f, 3)
	fx.checkpoint(f)
	for _, opt := range []ExportOptions{{}, {JobID: "1"}} {
		b, err := Export(fx.log, fx.trust, opt)
		if err != nil {
			f.Fatal(err)
		}
		data, err := b.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		rep, err := Verify(b, fx.trust, VerifyOptions{})
		if err == nil && rep.Size != 3 {
			t.Fatalf("a bundle verified at size %d; only size 3 was signed", rep.Size)
		}
		Verify(b, nil, VerifyOptions{})
	})
}
