package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeVersion signs a manifest for weights w and writes its directory.
func writeVersion(t *testing.T, dir, version string, w []float32, edit func(m *Manifest)) Manifest {
	t.Helper()
	m := testManifest(version, w)
	if edit != nil {
		edit(&m)
	}
	signed, err := Sign(m, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(dir, signed, f32bytes(w), testLayout().JSON()); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteVerifyDir(t *testing.T) {
	trust := mustTrust(t, testKey)
	w := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	dir := filepath.Join(t.TempDir(), "v1")
	writeVersion(t, dir, "v1", w, nil)
	for _, name := range append(dirFiles, FileSums) {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("WriteDir did not write %s: %v", name, err)
		}
	}
	m, err := VerifyDir(dir, trust)
	if err != nil {
		t.Fatalf("VerifyDir of a fresh directory: %v", err)
	}
	if m.Version != "v1" || m.DeviceUID == "" {
		t.Errorf("VerifyDir returned %s %s", m.Version, m.DeviceUID)
	}
	html, _ := os.ReadFile(filepath.Join(dir, FileCardHTML))
	for _, want := range []string{"&lt;with&gt;", "data:image/png;base64,", "suppressed", "95% interval", m.DeviceUID} {
		if !strings.Contains(string(html), want) {
			t.Errorf("card.html lacks %q", want)
		}
	}
	if strings.Contains(string(html), "<with>") || strings.Contains(string(html), "http") {
		t.Error("card.html has unescaped text or an external reference")
	}

	if _, err := VerifyDir(dir, mustTrust(t, mustKey(t, "coordinator"))); !errors.Is(err, ErrUntrustedKey) {
		t.Errorf("VerifyDir with another trust file = %v, want ErrUntrustedKey", err)
	}

	// Every file, one byte flipped or removed: the error names it.
	for _, name := range append(dirFiles, FileSums) {
		for _, how := range []string{"flip", "delete"} {
			d := filepath.Join(t.TempDir(), "v1")
			writeVersion(t, d, "v1", w, nil)
			p := filepath.Join(d, name)
			if how == "delete" {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			} else {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0x01
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := VerifyDir(d, trust)
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != name {
				t.Errorf("%s %s: VerifyDir = %v, want an error naming %s", how, name, err, name)
			}
		}
	}

	// Manifests swapped between two versions: each still verifies as a
	// signature, but no longer matches the weights beside it.
	d1, d2 := filepath.Join(t.TempDir(), "v1"), filepath.Join(t.TempDir(), "v2")
	writeVersion(t, d1, "v1", w, nil)
	writeVersion(t, d2, "v2", []float32{8, 7, 6, 5, 4, 3, 2, 1}, func(m *Manifest) { m.Parent = "v1" })
	m1, _ := os.ReadFile(filepath.Join(d1, FileManifest))
	m2, _ := os.ReadFile(filepath.Join(d2, FileManifest))
	os.WriteFile(filepath.Join(d1, FileManifest), m2, 0o644)
	os.WriteFile(filepath.Join(d2, FileManifest), m1, 0o644)
	for _, d := range []string{d1, d2} {
		_, err := VerifyDir(d, trust)
		var fe *FileError
		if !errors.As(err, &fe) || fe.File != FileWeights || !strings.Contains(err.Error(), "manifest.json (version") {
			t.Errorf("swapped manifest in %s: VerifyDir = %v", d, err)
		}
	}
}

func TestCardDeterministic(t *testing.T) {
	m := testManifest("v1", []float32{1, 2})
	h1, j1, err := Card(m)
	if err != nil {
		t.Fatal(err)
	}
	h2, j2, _ := Card(m)
	if string(h1) != string(h2) || string(j1) != string(j2) {
		t.Error("the same manifest rendered two different cards")
	}
	m.Validation[0].Assessment.Metrics["auc"] = est(0.5)
	if h3, j3, _ := Card(m); string(h3) == string(h1) || string(j3) == string(j1) {
		t.Error("a different metric rendered the same card")
	}
}
