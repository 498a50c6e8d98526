package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	// Many keys, so that some base64 public keys hold a "+".
	for i := range 40 {
		k := mustKey(t, "st-marys")
		path := filepath.Join(dir, "key"+string(rune('a'+i%26))+string(rune('a'+i/26))+".pem")
		if err := WriteKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v %v", st.Mode(), err)
		}
		back, err := ReadKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if back.Verifier() != k.Verifier() || back.ID() != k.ID() || back.Name() != "st-marys" {
			t.Fatalf("round trip: %s vs %s", back.Verifier(), k.Verifier())
		}
		id, _, _, err := parseVerifier(k.Verifier())
		if err != nil || id != k.ID() || strings.Count(id, "+") != 1 || len(id) != len("st-marys+")+8 {
			t.Fatalf("id %q from %q: %v", id, k.Verifier(), err)
		}
		if err := WriteKeyFile(path, k); err == nil {
			t.Fatal("a key file was overwritten")
		}
	}
	if _, err := GenerateKey(nil, "st marys"); err == nil {
		t.Error("a name with a space")
	}
	if _, err := GenerateKey(nil, "a+b"); err == nil {
		t.Error("a name with a plus")
	}
	if _, err := ParseKeyPEM([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Error("a PEM block of another type")
	}
}

func TestTrustFile(t *testing.T) {
	c, w1, w2 := mustKey(t, "coordinator"), mustKey(t, "st-marys"), mustKey(t, "city-general")
	text := "# Northern consortium\norigin " + testOrigin + "\nlog " + c.Verifier() + "\n\nwitness " + w1.Verifier() +
		"  # St Mary's\nwitness " + w2.Verifier() + "\nquorum 1\n"
	tr, err := ParseTrust([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Quorum != 1 || len(tr.Witnesses) != 2 || tr.Origin != testOrigin {
		t.Errorf("%+v", tr)
	}
	back, err := ParseTrust(tr.Marshal())
	if err != nil || string(back.Marshal()) != string(tr.Marshal()) {
		t.Errorf("round trip: %v\n%s", err, back.Marshal())
	}
	def, err := NewTrust(testOrigin, []string{c.Verifier()}, nil, []string{w1.Verifier(), w2.Verifier()}, 0)
	if err != nil || def.Quorum != 2 {
		t.Errorf("default quorum %d, want every witness: %v", def.Quorum, err)
	}
	bad := map[string]string{
		"no origin":      "log " + c.Verifier(),
		"no log":         "origin x",
		"unknown word":   "origin x\nlog " + c.Verifier() + "\nwitnes " + w1.Verifier(),
		"bad key":        "origin x\nlog coordinator+00000000+AAAA",
		"twice":          "origin x\nlog " + c.Verifier() + "\nwitness " + c.Verifier(),
		"quorum too big": "origin x\nlog " + c.Verifier() + "\nwitness " + w1.Verifier() + "\nquorum 2",
		"quorum zero":    "origin x\nlog " + c.Verifier() + "\nquorum 0",
	}
	for name, text := range bad {
		if _, err := ParseTrust([]byte(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ReadTrustFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzParseTrust: a trust file parses or fails, and what parses round-trips.
func FuzzParseTrust(f *testing.F) {
	c, w := mustKey(f, "coordinator"), mustKey(f, "st-marys")
	f.Add([]byte("origin a\nlog " + c.Verifier() + "\nwitness " + w.Verifier() + "\nquorum 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTrust(b)
		if err != nil {
			return
		}
		if _, err := ParseTrust(tr.Marshal()); err != nil {
			t.Fatalf("marshalled trust does not parse: %v", err)
		}
	})
}
