package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/imaging"
)

func readSecret(path string) ([]byte, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read site secret: %w", err)
		}
		s := []byte(strings.TrimSpace(string(b)))
		if len(s) < 16 {
			return nil, fmt.Errorf("site secret in %s is shorter than 16 bytes; use a long random value", path)
		}
		return s, nil
	}
	if v := os.Getenv("CONCORD_SITE_SECRET"); v != "" {
		if len(v) < 16 {
			return nil, errors.New("CONCORD_SITE_SECRET is shorter than 16 bytes; use a long random value")
		}
		return []byte(v), nil
	}
	return nil, errors.New("no site secret: pass --secret-file FILE or set CONCORD_SITE_SECRET (the key that makes uid remapping consistent and irreversible)")
}

// scan is "site-agent scan DIR [--json] [--cache FILE] [--decode] [--secret-file FILE]".
func scan(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	cache := fs.String("cache", "", "header cache `file` (mode 0600; default in the user's cache folder, see above; none: no cache)")
	decode := fs.Bool("decode", false, "decode every frame, not only check headers and sizes")
	secretFile := fs.String("secret-file", "", "site secret, to key series by de-identified uid (else SHA-256 of the uid)")
	allowBurned := fs.Bool("allow-burned-in", false, "count images flagged burned-in annotation as usable (the site opted in)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	pa := pacsScanFlags(fs)
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if pa.url != "" || pa.config != "" {
		return scanPACS(c, fs, pa, pos, *asJSON, *quiet, stdout, stderr)
	}
	var pacsOnly []string
	fs.Visit(func(f *flag.Flag) {
		if pacsFlagNames[f.Name] && f.Name != "json" && f.Name != "quiet" {
			pacsOnly = append(pacsOnly, "--"+f.Name)
		}
	})
	if len(pacsOnly) > 0 {
		return c.Usagef(stderr, "%s apply with --pacs URL only", strings.Join(pacsOnly, ", "))
	}
	if len(pos) != 1 {
		return c.Usagef(stderr, "give one folder to scan")
	}
	dir := pos[0]
	opt := imaging.ScanOptions{CachePath: *cache, Decode: *decode, AllowBurnedIn: *allowBurned}
	switch opt.CachePath {
	case "none":
		opt.CachePath = ""
	case "":
		p, err := defaultScanCache(dir)
		if err != nil {
			fmt.Fprintf(stderr, "scan: no cache (%v); pass --cache FILE to keep one\n", err)
		}
		opt.CachePath = p
	}
	if *secretFile != "" || os.Getenv("CONCORD_SITE_SECRET") != "" {
		sec, err := readSecret(*secretFile)
		if err != nil {
			return c.Fail(stderr, err)
		}
		opt.Deid = imaging.NewDeidentifier(sec)
	}
	if !*quiet {
		var last time.Time
		opt.Progress = func(done, total int) {
			if done == total || time.Since(last) > 200*time.Millisecond {
				last = time.Now()
				fmt.Fprintf(stderr, "\r%s", progressBar(done, total, 30))
				if done == total {
					fmt.Fprintln(stderr)
				}
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sum, err := imaging.Scan(ctx, dir, opt)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(sum); err != nil {
			return 1
		}
		return 0
	}
	printSummary(stdout, sum)
	return 0
}

// defaultScanCache is the cache file of dir in the user's cache folder
// ($XDG_CACHE_HOME/concord/scan or ~/.cache/concord/scan on Linux), made
// private to the user: the cache holds file paths. A shared temporary
// folder would let other users read them.
func defaultScanCache(dir string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	folder := filepath.Join(base, "concord", "scan")
	if err := os.MkdirAll(folder, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(folder, cacheName(dir)), nil
}

func cacheName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	d := imaging.NewDeidentifier([]byte("scan-cache-name"))
	return strings.TrimPrefix(d.UID(abs), "2.25.")
}

func progressBar(done, total, width int) string {
	if total == 0 {
		return "scanning: no files"
	}
	fill := done * width / total
	return fmt.Sprintf("scanning [%s%s] %d/%d files (%d%%)", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, done*100/total)
}

func sortedKeys(m map[string]int) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Slice(k, func(i, j int) bool {
		if m[k[i]] != m[k[j]] {
			return m[k[i]] > m[k[j]]
		}
		return k[i] < k[j]
	})
	return k
}

func printSummary(w io.Writer, s imaging.ScanSummary) {
	rejected := 0
	for _, n := range s.Rejected {
		rejected += n
	}
	fmt.Fprintf(w, "files      %d (%d from cache)\n", s.Files, s.CacheHits)
	fmt.Fprintf(w, "usable     %d\n", s.Usable)
	if s.Decoded > 0 || s.Usable == 0 {
		fmt.Fprintf(w, "decoded    %d\n", s.Decoded)
	} else {
		fmt.Fprintf(w, "decoded    %d (headers and sizes checked; --decode decodes the pixels)\n", s.Decoded)
	}
	fmt.Fprintf(w, "rejected   %d\n", rejected)
	for _, r := range sortedKeys(s.Rejected) {
		fmt.Fprintf(w, "  %-40s %d\n", r, s.Rejected[r])
	}
	if len(s.Classes) > 0 {
		fmt.Fprintln(w, "classes (first-level folders): files, usable, rejected")
		names := make([]string, 0, len(s.Classes))
		for n := range s.Classes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := s.Classes[n]
			fmt.Fprintf(w, "  %-40s %d, %d, %d\n", n, c.Files, c.Usable, c.Rejected)
		}
	}
	fmt.Fprintf(w, "studies    %d\nseries     %d\nmodalities\n", s.Studies, s.Series)
	for _, m := range sortedKeys(s.Modalities) {
		fmt.Fprintf(w, "  %-40s %d\n", m, s.Modalities[m])
	}
	fmt.Fprintln(w, "transfer syntaxes")
	for _, t := range sortedKeys(s.TransferSyntaxes) {
		fmt.Fprintf(w, "  %-40s %d\n", imaging.TransferSyntaxName(t), s.TransferSyntaxes[t])
	}
	if len(s.RejectedFiles) > 0 {
		fmt.Fprintln(w, "rejected files (relative to the scanned folder)")
		for _, f := range s.RejectedFiles {
			fmt.Fprintf(w, "  %-40s %s\n", f.Path, f.Reason)
		}
	}
}

// dicomExport is "site-agent dicom export FILE [--npy OUT] [--png OUT] [--frame N]".
// The .npy holds every frame's stored values (pydicom's pixel_array layout); the PNG is
// a windowed 8-bit preview of one frame.
func dicomExport(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	npyOut := fs.String("npy", "", "write the stored-value pixel array as .npy")
	pngOut := fs.String("png", "", "write a windowed preview as .png")
	frame := fs.Int("frame", 0, "frame for the preview")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 || (*npyOut == "" && *pngOut == "") {
		return c.Usagef(stderr, "give one FILE and --npy OUT, --png OUT or both")
	}
	im, err := imaging.ReadFile(pos[0])
	if err != nil {
		return c.Fail(stderr, err)
	}
	if *npyOut != "" {
		if err := writeNPY(im, *npyOut); err != nil {
			return c.Fail(stderr, err)
		}
	}
	if *pngOut != "" {
		if err := writePNG(im, *frame, *pngOut); err != nil {
			return c.Fail(stderr, err)
		}
	}
	fmt.Fprintf(stdout, "%dx%d, %d frame(s), %d sample(s), %s, %s\n", im.Columns, im.Rows, im.Frames, im.SamplesPerPixel, im.PhotometricInterpretation, imaging.TransferSyntaxName(im.TransferSyntaxUID))
	return 0
}

func writeNPY(im *imaging.Image, path string) error {
	var all []byte
	for i := 0; i < im.Frames; i++ {
		f, err := im.StoredFrame(i)
		if err != nil {
			return err
		}
		all = append(all, f...)
	}
	var shape []int
	if im.Frames > 1 {
		shape = append(shape, im.Frames)
	}
	shape = append(shape, im.Rows, im.Columns)
	if im.SamplesPerPixel > 1 {
		shape = append(shape, im.SamplesPerPixel)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write npy: %w", err)
	}
	if err := imaging.WriteNPY(f, im.Dtype(), shape, all); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writePNG(im *imaging.Image, frame int, path string) error {
	ch := 1
	if im.SamplesPerPixel == 3 || im.PhotometricInterpretation == "PALETTE COLOR" {
		ch = 3
	}
	p := imaging.Pipeline{Width: im.Columns, Height: im.Rows, Channels: ch, Resample: "area", Normalise: "voi"}
	if ch == 3 {
		p.Normalise = "auto"
	}
	if !im.HasWindow && ch == 1 {
		p.Normalise = "percentile:0.5:99.5"
	}
	v, err := p.Apply(im, frame)
	if err != nil {
		return err
	}
	w, h := im.Columns, im.Rows
	var img image.Image
	if ch == 1 {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for k := range g.Pix {
			g.Pix[k] = uint8(v[k]*255 + 0.5)
		}
		img = g
	} else {
		c := image.NewRGBA(image.Rect(0, 0, w, h))
		n := w * h
		for k := 0; k < n; k++ {
			c.Set(k%w, k/w, color.RGBA{uint8(v[k]*255 + 0.5), uint8(v[n+k]*255 + 0.5), uint8(v[2*n+k]*255 + 0.5), 255})
		}
		img = c
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("write png: %w", err)
	}
	return f.Close()
}

// deid is "site-agent deid IN OUT [--secret-file FILE] [--allow-burned-in]": IN and OUT
// are files, or folders (every file under IN, written under OUT named by its new UID).
func deid(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	secretFile := fs.String("secret-file", "", "site secret (else CONCORD_SITE_SECRET)")
	allowBurned := fs.Bool("allow-burned-in", false, "also write images flagged burned-in annotation (their pixels may show identifiers)")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return c.Usagef(stderr, "give IN and OUT")
	}
	sec, err := readSecret(*secretFile)
	if err != nil {
		return c.Fail(stderr, err)
	}
	d := imaging.NewDeidentifier(sec)
	d.AllowBurnedIn = *allowBurned
	st, err := os.Stat(pos[0])
	if err != nil {
		return c.Fail(stderr, err)
	}
	if !st.IsDir() {
		out := pos[1]
		if ost, err := os.Stat(out); err == nil && ost.IsDir() {
			// Name the copy by its new UID: hospital file names often carry identifiers.
			res, err := d.Tree(filepath.Dir(pos[0]), out, filepath.Base(pos[0]))
			if err != nil || res.Written != 1 {
				fmt.Fprintln(stderr, "deid: could not de-identify the file:", err, res.Failed)
				return 1
			}
			fmt.Fprintln(stdout, "wrote 1 de-identified file")
			return 0
		}
		if err := d.File(pos[0], out); err != nil {
			return c.Fail(stderr, err)
		}
		fmt.Fprintln(stdout, "wrote 1 de-identified file")
		return 0
	}
	res, err := d.Tree(pos[0], pos[1], "")
	if err != nil {
		return c.Fail(stderr, err)
	}
	fmt.Fprintf(stdout, "wrote %d de-identified files\n", res.Written)
	for _, r := range sortedKeys(res.Failed) {
		fmt.Fprintf(stdout, "  skipped %-38s %d\n", r, res.Failed[r])
	}
	return 0
}

const scanHelp = `Index a DICOM folder: how many files, how many are usable, which files were rejected and why
(paths relative to DIR, so that the operator can find them; they never go to logs or events),
and counts per class folder (the first-level subfolders of DIR, as data.classes names them).
"decoded" counts files whose pixels were decoded, which only --decode does; without it,
headers and sizes are checked and the files that pass are counted as "usable".

The header cache (mode 0600) lets a second scan skip unchanged files. By default it lives
in the user's cache folder ($XDG_CACHE_HOME/concord/scan, else ~/.cache/concord/scan),
one file per scanned folder; --cache FILE puts it elsewhere, --cache none turns it off.

With --pacs URL, scan asks the PACS what a query would bring (studies, series, instances,
modalities, body parts, transfer syntaxes where the PACS gives them, estimated bytes) without
retrieving any pixel data. --modality (repeatable), --body-part, --description, --from and --to
make the query, as data.pacs.queries in agent.yaml do. It also counts the instances a data load
would skip before decoding (a transfer syntax it does not decode, objects without pixel data).

With --config agent.yaml, scan takes data.pacs from the agent's config (its url unless --pacs, its
queries unless query flags are given) and labels what the query finds with its label source:
images and studies per class of data.classes, and those without a label, by the reason a data
load would give. A labels CSV needs nothing retrieved; seg_labels and sr_labels retrieve the SEG
or SR objects of the studies found (their count and bytes are printed), never an image.`
