package imaging

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type deidAction byte

const (
	actionK deidAction = iota // keep
	actionD                   // replace with a dummy value of the same VR
	actionZ                   // replace with zero length
	actionX                   // remove
	actionU                   // replace a UID with its consistent site-local remapping
	actionC                   // clean: with the Basic Profile alone, treated as Z
)

type deidRule struct {
	action deidAction
	vr     string
}

// deidVR gives implicit-VR files the VRs of the attributes the profile touches.
var deidVR = func() map[Tag]string {
	m := make(map[Tag]string, len(deidTable))
	for t, r := range deidTable {
		m[t] = r.vr
	}
	return m
}()

// DeidentificationMethod is written to (0012,0063).
const DeidentificationMethod = "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile (Concord)"

// ErrBurnedIn marks a file flagged Burned In Annotation = YES: its pixels may show
// identifiers that header de-identification cannot remove.
var ErrBurnedIn = errors.New("image has burned-in annotation")

// Deidentifier applies the Basic Application Level Confidentiality Profile (PS3.15
// Annex E). UIDs are remapped with an HMAC keyed by the site secret, so the same UID
// maps to the same new UID everywhere in one site and cannot be reversed without the
// secret. The caller keeps the secret inside the hospital.
type Deidentifier struct {
	key []byte
	// AllowBurnedIn writes files flagged Burned In Annotation = YES instead of refusing them.
	AllowBurnedIn bool
}

// NewDeidentifier returns a de-identifier keyed by the site secret (at least 16 bytes
// is advisable; an empty secret still works but remapping is then guessable).
func NewDeidentifier(siteSecret []byte) *Deidentifier {
	k := make([]byte, len(siteSecret))
	copy(k, siteSecret)
	return &Deidentifier{key: k}
}

// UID returns the site-consistent replacement of uid: "2.25." and the decimal value of
// 128 bits of HMAC-SHA256(secret, uid), a valid UID of at most 44 characters.
func (d *Deidentifier) UID(uid string) string {
	uid = strings.TrimRight(uid, " \x00")
	if uid == "" {
		return ""
	}
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte("concord-uid\x00"))
	m.Write([]byte(uid))
	sum := m.Sum(nil)
	n := new(big.Int).SetBytes(sum[:16])
	return "2.25." + n.String()
}

// isStandardUID says whether a UID is defined by DICOM itself (SOP classes, transfer
// syntaxes, coding schemes), which identifies nobody and must not be remapped.
func isStandardUID(u string) bool { return strings.HasPrefix(u, "1.2.840.10008.") }

func dummy(vr string, bo binary.ByteOrder) []byte {
	switch vr {
	case "DA":
		return []byte("19000101")
	case "TM":
		return []byte("000000")
	case "DT":
		return []byte("19000101000000")
	case "AS":
		return []byte("000Y")
	case "DS", "IS":
		return []byte("0")
	case "US", "SS":
		return make([]byte, 2)
	case "UL", "SL", "FL", "AT":
		return make([]byte, 4)
	case "FD":
		return make([]byte, 8)
	case "UI":
		return nil
	}
	return []byte("REMOVED")
}

// Dataset de-identifies ds in place.
func (d *Deidentifier) Dataset(ds *Dataset) {
	out := ds.Elements[:0]
	for _, el := range ds.Elements {
		t := el.Tag
		// Private attributes, curves and overlay comments/data are removed outright.
		if t.Group()%2 == 1 || (t.Group()>>8 == 0x50) || (t.Group()>>8 == 0x60 && (t.Element() == 0x3000 || t.Element() == 0x4000)) {
			continue
		}
		rule, listed := deidTable[t]
		vr := el.VR
		if vr == "" {
			vr = rule.vr
		}
		if !listed {
			rule.action = actionK
			v := strings.TrimRight(string(el.Value), " \x00")
			// Instance UIDs the table does not list are remapped too; in implicit VR
			// files an unlisted attribute has no VR, so a value shaped like a UID is
			// taken for one.
			if (vr == "UI" || (vr == "" && looksLikeUID(v))) && !isStandardUID(v) {
				rule.action = actionU
			}
		}
		switch rule.action {
		case actionX:
			continue
		case actionZ, actionC:
			el.Value, el.Items, el.Fragments = []byte{}, nil, nil
			if vr == "SQ" {
				el.Items = []*Dataset{}
			}
		case actionD:
			if vr == "SQ" || el.Items != nil {
				el.Items, el.VR = []*Dataset{}, "SQ"
			} else {
				el.Value = dummy(vr, ds.order())
			}
		case actionU:
			el.Value = []byte(d.remapList(string(el.Value)))
		}
		for _, it := range el.Items {
			d.Dataset(it)
		}
		out = append(out, el)
	}
	ds.Elements = out
	ds.set(0x00120062, "CS", []byte("YES"))
	ds.set(0x00120063, "LO", []byte(DeidentificationMethod))
	code := &Dataset{BigEndian: ds.BigEndian, Implicit: ds.Implicit, Elements: []Element{
		{Tag: 0x00080100, VR: "SH", Value: []byte("113100")},
		{Tag: 0x00080102, VR: "SH", Value: []byte("DCM")},
		{Tag: 0x00080104, VR: "LO", Value: []byte("Basic Application Confidentiality Profile")},
	}}
	ds.setElement(Element{Tag: 0x00120064, VR: "SQ", Items: []*Dataset{code}})
}

// looksLikeUID: a valid UID of at least five components, which no numeric string value
// (DS, IS) can be.
func looksLikeUID(v string) bool {
	for _, u := range strings.Split(v, `\`) {
		if !ValidUID(u) || strings.Count(u, ".") < 4 {
			return false
		}
	}
	return v != ""
}

func (d *Deidentifier) remapList(v string) string {
	parts := strings.Split(strings.TrimRight(v, " \x00"), `\`)
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p != "" && !isStandardUID(p) {
			parts[i] = d.UID(p)
		}
	}
	return strings.Join(parts, `\`)
}

func (ds *Dataset) set(t Tag, vr string, v []byte) {
	ds.setElement(Element{Tag: t, VR: vr, Value: v})
}

// setElement replaces or inserts an element, keeping tag order.
func (ds *Dataset) setElement(el Element) {
	if e := ds.Find(el.Tag); e != nil {
		*e = el
		return
	}
	ds.Elements = append(ds.Elements, el)
	sort.SliceStable(ds.Elements, func(i, j int) bool { return ds.Elements[i].Tag < ds.Elements[j].Tag })
}

// Bytes de-identifies a whole Part 10 file held in memory and returns the new file.
// Deflated input is written as explicit VR little endian; other transfer syntaxes,
// and encapsulated pixel data, are kept.
func (d *Deidentifier) Bytes(in []byte) ([]byte, error) {
	f, err := Parse(in, DefaultLimits)
	if err != nil {
		return nil, err
	}
	if !d.AllowBurnedIn && strings.EqualFold(f.Data.String(tagBurnedIn), "YES") {
		return nil, fmt.Errorf("%w: refused (enable burned-in images explicitly to de-identify them)", ErrBurnedIn)
	}
	ts := f.TransferSyntax
	if ts == TSDeflatedLE {
		ts = TSExplicitLE
	}
	meta := f.Meta
	if meta == nil {
		meta = &Dataset{}
		meta.set(0x00020001, "OB", []byte{0, 1})
		meta.set(0x00020002, "UI", []byte(f.Data.String(tagSOPClassUID)))
	}
	d.Dataset(f.Data)
	meta.set(tagMediaSOPInstance, "UI", []byte(f.Data.String(tagSOPInstanceUID)))
	meta.set(tagTransferSyntax, "UI", []byte(ts))
	meta.set(0x00020012, "UI", []byte(ImplementationClassUID))
	meta.set(0x00020013, "SH", []byte("CONCORD1"))
	for _, t := range []Tag{0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102} {
		meta.remove(t)
	}
	out, err := encodeFile(meta, f.Data, ts)
	if err != nil {
		return nil, fmt.Errorf("write de-identified file: %w", err)
	}
	return out, nil
}

func (ds *Dataset) remove(t Tag) {
	out := ds.Elements[:0]
	for _, e := range ds.Elements {
		if e.Tag != t {
			out = append(out, e)
		}
	}
	ds.Elements = out
}

// File writes a de-identified copy of in to out (never in place).
func (d *Deidentifier) File(in, out string) error {
	if sameFile(in, out) {
		return errors.New("de-identify: the output is the input; write copies elsewhere")
	}
	b, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("de-identify: %w", noPath(err))
	}
	res, err := d.Bytes(b)
	if err != nil {
		return fmt.Errorf("de-identify: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("de-identify: %w", err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, res, 0o644); err != nil {
		return fmt.Errorf("de-identify: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("de-identify: %w", err)
	}
	return nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// TreeResult counts what Tree did.
type TreeResult struct {
	Written int            `json:"written"`
	Failed  map[string]int `json:"failed_by_reason"`
}

// Tree de-identifies every file under inDir (only the one named only, if not empty)
// into outDir. Output files are named by their remapped SOP Instance UIDs, since
// hospital file and folder names often carry patient names or accession numbers.
// Unreadable files are counted by reason and skipped.
func (d *Deidentifier) Tree(inDir, outDir, only string) (TreeResult, error) {
	res := TreeResult{Failed: map[string]int{}}
	err := filepath.WalkDir(inDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			res.Failed["unreadable"]++
			return nil
		}
		if e.IsDir() && only != "" && path != inDir {
			return filepath.SkipDir
		}
		if e.IsDir() || !e.Type().IsRegular() || (only != "" && e.Name() != only) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			res.Failed["unreadable"]++
			return nil
		}
		out, err := d.Bytes(b)
		if err != nil {
			res.Failed[Reason(err)]++
			return nil
		}
		f, err := Parse(out, DefaultLimits)
		if err != nil {
			res.Failed[Reason(err)]++
			return nil
		}
		name := f.Data.String(tagSOPInstanceUID)
		if name == "" {
			name = d.UID(path)
		}
		dst := filepath.Join(outDir, name+".dcm")
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, out, 0o644); err != nil {
			return err
		}
		res.Written++
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("de-identify tree: %w", err)
	}
	return res, nil
}

// Reason is a short, identifier-free category of a read error, for counts in scans,
// logs and reports.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrBurnedIn):
		return "burned-in annotation"
	case errors.Is(err, ErrNoPixelData):
		return "no pixel data"
	case errors.Is(err, ErrNotDICOM):
		return "not dicom"
	case errors.Is(err, ErrTruncated):
		return "truncated"
	case errors.Is(err, ErrTooLarge):
		return "too large"
	case errors.Is(err, ErrUnsupported):
		var u *UnsupportedSyntaxError
		if errors.As(err, &u) {
			return "unsupported transfer syntax " + TransferSyntaxName(u.UID)
		}
		return "unsupported encoding"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return "unreadable"
	}
	return "other"
}

// Record is what the agent may record about one image: de-identified UIDs and
// technical attributes only.
type Record struct {
	StudyUID       string `json:"study_uid"`
	SeriesUID      string `json:"series_uid"`
	SOPInstanceUID string `json:"sop_instance_uid"`
	Modality       string `json:"modality"`
	TransferSyntax string `json:"transfer_syntax"`
	Photometric    string `json:"photometric"`
	Rows           int    `json:"rows"`
	Columns        int    `json:"columns"`
	Frames         int    `json:"frames"`
	BurnedIn       bool   `json:"burned_in"`
}

// Record returns the identifier-free summary of im.
func (d *Deidentifier) Record(im *Image) Record {
	return Record{
		StudyUID: d.UID(im.StudyInstanceUID), SeriesUID: d.UID(im.SeriesInstanceUID), SOPInstanceUID: d.UID(im.SOPInstanceUID),
		Modality: cleanCS(im.Modality), TransferSyntax: im.TransferSyntaxUID, Photometric: cleanCS(im.PhotometricInterpretation),
		Rows: im.Rows, Columns: im.Columns, Frames: im.Frames, BurnedIn: im.BurnedInAnnotation,
	}
}

// cleanCS keeps a code string only if it looks like one (upper case, digits, space,
// underscore, at most 16 characters), so free text typed into a coded field cannot leak.
func cleanCS(s string) string {
	if len(s) > 16 {
		return "INVALID"
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_') {
			return "INVALID"
		}
	}
	return s
}
