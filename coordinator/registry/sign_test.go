package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/concord-fl/concord/privacy/audit"
)

func TestDeviceUID(t *testing.T) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	// python3 -c "print(int('9f86d081884c7d659a2feaa0c55ad015', 16))"
	if got, want := DeviceUID(sha), "2.25.212047248112658246449511647784264716309"; got != want {
		t.Errorf("DeviceUID = %s, want %s", got, want)
	}
	if got := DeviceUID(strings.Repeat("f", 64)); len(got) > 64 || got != "2.25.340282366920938463463374607431768211455" {
		t.Errorf("largest UID %q", got)
	}
	if got := DeviceUID(strings.Repeat("0", 64)); got != "2.25.0" {
		t.Errorf("zero hash gives %q, want 2.25.0 (no leading zeros in a UID component)", got)
	}
	other := "0" + sha[1:]
	if DeviceUID(other) == DeviceUID(sha) {
		t.Error("a different hash gave the same UID")
	}
	for _, bad := range []string{"", "abc", strings.Repeat("z", 64)} {
		if got := DeviceUID(bad); got != "" {
			t.Errorf("DeviceUID(%q) = %q, want empty", bad, got)
		}
	}
}

func TestSignOpen(t *testing.T) {
	key := mustKey(t, "coordinator")
	trust := mustTrust(t, key)
	m := testManifest("v1", []float32{1, 2, 3, 4, 5, 6, 7, 8})
	signed, err := Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(signed, trust)
	if err != nil {
		t.Fatal(err)
	}
	m.Format, m.DeviceUID = ManifestFormat, DeviceUID(m.WeightsSHA256)
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed the manifest:\n got %+v\nwant %+v", got, m)
	}

	var env envelope
	if err := json.Unmarshal(signed, &env); err != nil {
		t.Fatal(err)
	}
	reseal := func(f func(e *envelope)) []byte {
		e := env
		e.Manifest = bytes.Clone(env.Manifest)
		e.Signature = bytes.Clone(env.Signature)
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	other := mustKey(t, "coordinator")
	for _, tc := range []struct {
		name   string
		signed []byte
		trust  *audit.Trust
		want   error
		msg    string
	}{
		{"unknown key", signed, mustTrust(t, other), ErrUntrustedKey, key.ID()},
		{"changed manifest", reseal(func(e *envelope) {
			e.Manifest = bytes.Replace(e.Manifest, []byte(`"v1"`), []byte(`"v9"`), 1)
		}), trust, ErrSignature, "changed after"},
		{"changed signature", reseal(func(e *envelope) { e.Signature[0] ^= 1 }), trust, ErrSignature, ""},
		{"not canonical", reseal(func(e *envelope) { e.Manifest = append([]byte(" "), e.Manifest...) }), trust, ErrManifest, "canonical"},
		{"key case", reseal(func(e *envelope) {
			e.Manifest = bytes.Replace(e.Manifest, []byte(`"version"`), []byte(`"Version"`), 1)
		}), trust, ErrManifest, "canonical"},
		{"unknown field", reseal(func(e *envelope) { e.Manifest = append([]byte(`{"extra":1,`), e.Manifest[1:]...) }), trust, ErrManifest, "unknown field"},
		{"wrong format", reseal(func(e *envelope) { e.Format = "x" }), trust, ErrManifest, "format"},
		{"other context", reseal(func(e *envelope) { e.Context = "concord audit report\n" }), trust, ErrManifest, ""},
		{"no signature", reseal(func(e *envelope) { e.Signature = nil }), trust, ErrManifest, "no signature"},
		{"too big", append(signed, bytes.Repeat([]byte(" "), MaxManifestBytes)...), trust, ErrManifest, "more than"},
		{"trailing data", append(bytes.Clone(signed), []byte(`{}`)...), trust, ErrManifest, "after"},
		{"not JSON", []byte("hello"), trust, ErrManifest, ""},
	} {
		_, err := Open(tc.signed, tc.trust)
		if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.msg) {
			t.Errorf("%s: Open = %v, want %v with %q", tc.name, err, tc.want, tc.msg)
		}
	}
	if _, err := Open(signed, nil); err == nil || !strings.Contains(err.Error(), "trust file") {
		t.Errorf("Open without trust = %v", err)
	}
}

func TestSignChecksDeviceUID(t *testing.T) {
	key := mustKey(t, "coordinator")
	m := testManifest("v1", []float32{1})
	m.DeviceUID = "2.25.1"
	if _, err := Sign(m, key); err == nil || !strings.Contains(err.Error(), "does not derive") {
		t.Errorf("Sign with a wrong device uid = %v", err)
	}
	m.DeviceUID, m.WeightsSHA256 = "", "nothex"
	if _, err := Sign(m, key); err == nil || !strings.Contains(err.Error(), "not a SHA-256") {
		t.Errorf("Sign with a bad weights hash = %v", err)
	}
}
