package dimse

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/testenv"
)

// corpusFiles are loaded into Orthanc: several series, modalities, study
// dates, a body part and series descriptions, and every compressed
// transfer syntax family the client proposes except deflate and JPEG-LS.
var corpusFiles = []string{
	"data/dicom/dcmqi/ct-3slice/01.dcm", // CT implicit LE, one series of three
	"data/dicom/dcmqi/ct-3slice/02.dcm",
	"data/dicom/dcmqi/ct-3slice/03.dcm",
	"data/dicom/pydicom/CT_small.dcm",              // CT explicit LE
	"data/dicom/pydicom/MR_small_jp2klossless.dcm", // MR JPEG 2000 lossless
	"data/dicom/pydicom/SC_rgb_rle.dcm",            // OT RLE, series of two
	"data/dicom/pydicom/SC_rgb_jpeg_dcmtk.dcm",     // OT JPEG baseline
	"data/dicom/pydicom/JPEG2000.dcm",              // NM JPEG 2000, WHOLE BODY
	"data/dicom/pydicom/JPEG-lossy.dcm",            // NM JPEG extended
	"data/dicom/pydicom/693_J2KI.dcm",              // CT JPEG 2000, "5/5mm Plain"
	"data/dicom/pydicom/J2K_pixelrep_mismatch.dcm", // CT JPEG 2000 lossless, HEAD
	"data/dicom/pydicom/examples_overlay.dcm",      // MR, ABDOMEN
}

// corpusFile is one uploaded file and what the tests expect back.
type corpusFile struct {
	path                                  string
	study, series, sop, ts                string
	modality, date, bodyPart, description string
	pixels                                []byte // pixel data value or its fragments, joined
}

var pixelTag = imaging.NewTag(0x7FE0, 0x0010)

func corpus(t *testing.T) []corpusFile {
	t.Helper()
	var out []corpusFile
	for _, rel := range corpusFiles {
		p := testenv.Shared(t, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := imaging.Parse(b, imaging.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		ds := f.Data
		out = append(out, corpusFile{
			path:        p,
			study:       ds.String(imaging.NewTag(0x0020, 0x000D)),
			series:      ds.String(imaging.NewTag(0x0020, 0x000E)),
			sop:         ds.String(imaging.NewTag(0x0008, 0x0018)),
			ts:          f.TransferSyntax,
			modality:    ds.String(imaging.NewTag(0x0008, 0x0060)),
			date:        ds.String(imaging.NewTag(0x0008, 0x0020)),
			bodyPart:    ds.String(imaging.NewTag(0x0018, 0x0015)),
			description: ds.String(imaging.NewTag(0x0008, 0x103E)),
			pixels:      pixelBytes(t, f),
		})
	}
	return out
}

func pixelBytes(t *testing.T, f *imaging.File) []byte {
	t.Helper()
	el := f.Data.Find(pixelTag)
	if el == nil {
		t.Fatal("no pixel data")
	}
	if el.Fragments != nil {
		return bytes.Join(el.Fragments, nil)
	}
	return el.Value
}
