package jpeg2000

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// htStreams are the HTJ2K streams the malformed-input tests start from.
func htStreams(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range []string{"byte.jph", "byte_causal.jhc", "Bretagne1_ht.j2k"} {
		out[name] = readShared(t, "data/jpeg2000/htj2k/"+name)
	}
	files, _ := filepath.Glob("testdata/htj2k/*.jph")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func categorised(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTruncated) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooLarge)
}

// TestHTTruncated cuts HT streams short: each cut gives a truncated or
// malformed error, never an image.
func TestHTTruncated(t *testing.T) {
	for name, data := range htStreams(t) {
		checkCuts(t, name, data, 1, 10, 30, 60, 90, 99)
	}
}

// TestHTCorrupted overwrites bytes of the code-block data (after the first SOD)
// with a fixed seed: every variant decodes or gives a categorised error, and
// the damage inside HT segments is caught by the block decoder's checks at
// least once.
func TestHTCorrupted(t *testing.T) {
	r := rand.New(rand.NewSource(15))
	blockErrors := 0
	streams := htStreams(t)
	names := make([]string, 0, len(streams))
	for name := range streams {
		names = append(names, name)
	}
	sort.Strings(names) // the same corruptions every run
	for _, name := range names {
		data := streams[name]
		if len(data) > 64<<10 {
			continue // a few streams of 6 to 24 KB cover the code paths in little time
		}
		sod := bytes.Index(data, []byte{0xFF, 0x93})
		if sod < 0 {
			t.Fatalf("%s: no SOD", name)
		}
		for v := 0; v < 60; v++ {
			b := append([]byte(nil), data...)
			for k := 0; k < 1+v%8; k++ {
				b[sod+2+r.Intn(len(b)-sod-2)] = byte(r.Intn(256))
			}
			img, err := Decode(b, Options{})
			if err != nil {
				if !categorised(err) {
					t.Fatalf("%s variant %d: uncategorised error %v", name, v, err)
				}
				if strings.Contains(err.Error(), "HT ") {
					blockErrors++
				}
				continue
			}
			for _, c := range img.Components {
				if len(c.Samples) != c.Width*c.Height {
					t.Fatalf("%s variant %d: %dx%d component holds %d samples", name, v, c.Width, c.Height, len(c.Samples))
				}
			}
		}
	}
	if blockErrors == 0 {
		t.Error("no corruption was reported by the HT block decoder")
	}
	t.Logf("%d damaged variants reported by the HT block decoder", blockErrors)
}

// TestHTRefusals: what the HT decoder does not do is refused by name.
func TestHTRefusals(t *testing.T) {
	data := readShared(t, "data/jpeg2000/htj2k/byte.jph")
	cs, err := codestream(data)
	if err != nil {
		t.Fatal(err)
	}
	marker := func(m int) int {
		for pos := 2; pos+4 <= len(cs); pos += 2 + u16(cs[pos+2:]) {
			if u16(cs[pos:]) == m {
				return pos
			}
		}
		t.Fatalf("no marker 0x%04X", m)
		return 0
	}
	cod, capm, sot := marker(mCOD), marker(mCAP), marker(mSOT)
	for _, tc := range []struct {
		name, want string
		edit       func(b []byte) []byte
	}{
		{"mixed code-blocks", "mixed", func(b []byte) []byte { b[cod+4+5+3] |= cbHTMixed; return b }},
		{"Part 2 capabilities", "Part 2", func(b []byte) []byte { b[capm+4] |= 0x40; return b }},
		{"region of interest", "region of interest", func(b []byte) []byte {
			rgn := []byte{0xFF, 0x5E, 0, 5, 0, 0, 3}
			return append(append(append([]byte(nil), b[:sot]...), rgn...), b[sot:]...)
		}},
	} {
		b := tc.edit(append([]byte(nil), cs...))
		_, err := Decode(b, Options{})
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an unsupported error naming %q", tc.name, err, tc.want)
		}
	}
	// A second HT set: three passes, then more in a later layer.
	cb := &codeBlock{lblock: 3}
	br := &bitReader{b: []byte{0, 0, 0, 0, 0, 0}}
	if _, err := readHTLengths(br, cb, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := readHTLengths(br, cb, 1); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "HT set") {
		t.Errorf("a fourth pass: %v", err)
	}
}

// TestHTPlaceholderPasses: a first contribution of seven passes is two skipped
// bit-planes (placeholders) and one cleanup pass; its lengths use
// Lblock + floor(log2(7)) bits for Lcup.
func TestHTPlaceholderPasses(t *testing.T) {
	// lblock 3 + 2 = 5 bits of Lcup = 9: 01001 then padding.
	cb := &codeBlock{lblock: 3, zbp: 1}
	br := &bitReader{b: []byte{0x48, 0}}
	n, err := readHTLengths(br, cb, 7)
	if err != nil {
		t.Fatal(err)
	}
	if n != 9 || cb.zbp != 3 || cb.passes != 1 || len(cb.segs) != 1 || cb.segs[0].length != 9 {
		t.Errorf("got %d bytes, zbp %d, %d passes, segments %+v", n, cb.zbp, cb.passes, cb.segs)
	}
}
