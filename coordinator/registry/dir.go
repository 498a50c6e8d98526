package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/audit"
)

// The files of a version's directory.
const (
	FileWeights  = "model.f32"     // float32 little-endian, in layout order
	FileLayout   = "layout.json"   // the layout manifest (learning.Layout JSON)
	FileManifest = "manifest.json" // the signed manifest
	FileCardHTML = "card.html"     // the model card, for people
	FileCardJSON = "card.json"     // the model card, as data
	FileSums     = "SHA256SUMS"    // sha256sum -c format, over the five files above
)

// dirFiles are the files SHA256SUMS lists, in its order.
var dirFiles = []string{FileCardHTML, FileCardJSON, FileLayout, FileManifest, FileWeights}

// maxLayoutBytes bounds layout.json and the cards VerifyDir reads.
const maxLayoutBytes = 64 << 20

// FileError is a directory check that failed, naming the file to blame.
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

func fileErr(file, format string, args ...any) error {
	return &FileError{File: file, Err: fmt.Errorf(format, args...)}
}

// WriteDir writes a version's artefacts to dir (made if missing): the
// weights and layout as given, the signed manifest, the model cards and
// SHA256SUMS. It does not verify the signature; VerifyDir does.
func WriteDir(dir string, signed, weights, layout []byte) error {
	_, m, err := decode(signed)
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	html, js, err := Card(m)
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	files := map[string][]byte{FileWeights: weights, FileLayout: layout, FileManifest: signed, FileCardHTML: html, FileCardJSON: js}
	files[FileSums] = sums(files)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := append(append([]string{}, dirFiles...), FileSums) // SHA256SUMS last: its presence means the rest is written
	for _, name := range names {
		if err := writeFile(filepath.Join(dir, name), files[name]); err != nil {
			return err
		}
	}
	return nil
}

// writeFile replaces path through a temporary file, so that a reader
// never sees half a file.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func sums(files map[string][]byte) []byte {
	var b strings.Builder
	names := append([]string{}, dirFiles...)
	sort.Strings(names)
	for _, n := range names {
		s := sha256.Sum256(files[n])
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(s[:]), n)
	}
	return []byte(b.String())
}

// VerifyDir checks a version's directory offline: the manifest's signature
// against trust, the weights' SHA-256 and size, the layout's hash, the
// device UID, that both cards are what the manifest renders, and
// SHA256SUMS. The first failure is a *FileError naming the file.
func VerifyDir(dir string, trust *audit.Trust) (Manifest, error) {
	read := func(name string, limit int64) ([]byte, error) {
		b, err := readBounded(filepath.Join(dir, name), limit)
		if err != nil {
			return nil, &FileError{File: name, Err: err}
		}
		return b, nil
	}
	signed, err := read(FileManifest, MaxManifestBytes)
	if err != nil {
		return Manifest{}, err
	}
	m, err := Open(signed, trust)
	if err != nil {
		return Manifest{}, &FileError{File: FileManifest, Err: err}
	}
	if uid := DeviceUID(m.WeightsSHA256); uid == "" || uid != m.DeviceUID {
		return Manifest{}, fileErr(FileManifest, "device uid %s does not derive from weights_sha256 %s", m.DeviceUID, m.WeightsSHA256)
	}
	if m.Params <= 0 {
		return Manifest{}, fileErr(FileManifest, "params %d: no weights to check", m.Params)
	}
	files := map[string][]byte{FileManifest: signed}
	if files[FileWeights], err = read(FileWeights, int64(m.Params)*4); err != nil {
		return Manifest{}, err
	}
	if got := hexSum(files[FileWeights]); got != m.WeightsSHA256 {
		return Manifest{}, fileErr(FileWeights, "sha256 %s, but manifest.json (version %s) says %s: the weights or the manifest were replaced",
			got, m.Version, m.WeightsSHA256)
	}
	if n := len(files[FileWeights]); n != m.Params*4 {
		return Manifest{}, fileErr(FileWeights, "%d bytes, want %d parameters of 4 bytes", n, m.Params)
	}
	if files[FileLayout], err = read(FileLayout, maxLayoutBytes); err != nil {
		return Manifest{}, err
	}
	if got := hexSum(files[FileLayout]); got != m.LayoutHash {
		return Manifest{}, fileErr(FileLayout, "hash %s, but manifest.json (version %s) says layout %s", got, m.Version, m.LayoutHash)
	}
	if l, err := learning.ParseLayout(files[FileLayout]); err != nil {
		return Manifest{}, &FileError{File: FileLayout, Err: err}
	} else if l.Total != m.Params {
		return Manifest{}, fileErr(FileLayout, "%d parameters, the manifest says %d", l.Total, m.Params)
	}
	html, js, err := Card(m)
	if err != nil {
		return Manifest{}, &FileError{File: FileManifest, Err: err}
	}
	for _, c := range []struct {
		name string
		want []byte
	}{{FileCardJSON, js}, {FileCardHTML, html}} {
		if files[c.name], err = read(c.name, maxLayoutBytes); err != nil {
			return Manifest{}, err
		}
		if !bytes.Equal(files[c.name], c.want) {
			return Manifest{}, fileErr(c.name, "differs from the card manifest.json (version %s) renders: it was edited, or written by another concord version", m.Version)
		}
	}
	listed, err := read(FileSums, 64<<10)
	if err != nil {
		return Manifest{}, err
	}
	if !bytes.Equal(listed, sums(files)) {
		return Manifest{}, fileErr(FileSums, "does not list the directory's files and their hashes (regenerate with: sha256sum %s)", strings.Join(dirFiles, " "))
	}
	return m, nil
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.New("missing")
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than the %d bytes expected", limit)
	}
	return b, nil
}

// DecodeWeights reads model.f32's bytes: float32, little-endian.
func DecodeWeights(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of float32 values", FileWeights, len(b))
	}
	w := make([]float32, len(b)/4)
	for i := range w {
		w[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return w, nil
}
