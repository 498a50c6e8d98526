package imaging

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// segFixture writes a SEG for the dcmqi CT series whose masks are the dcmqi liver
// masks shrunk to 128x128 (a model's input size); it returns the file, the sources
// and what was written.
func segFixture(t *testing.T) (string, []*Image, *SegWritten) {
	t.Helper()
	dir := testenv.Shared(t, "data/dicom/dcmqi")
	ref, err := ReadSegmentation(filepath.Join(dir, "liver-seg.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	cts, _ := filepath.Glob(filepath.Join(dir, "ct-3slice", "*.dcm"))
	if len(cts) != 3 {
		t.Fatalf("want 3 CT slices, found %d", len(cts))
	}
	var src []SegSource
	var ims []*Image
	for _, p := range cts {
		im, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		full := ref.Mask(im.SOPInstanceUID, 1)
		if full == nil {
			full = make([]uint8, im.Rows*im.Columns)
		}
		small, err := ResampleNearest(full, im.Rows, im.Columns, 128, 128)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, SegSource{Image: im, Mask: small, MaskRows: 128, MaskColumns: 128})
		ims = append(ims, im)
	}
	out := filepath.Join(t.TempDir(), "seg.dcm")
	w, err := WriteSegmentation(out, src, SegOptions{
		SegmentLabel: "Liver", AlgorithmName: "liver-unet v3",
		Category:       Code{"123037004", "SCT", "Anatomical Structure"},
		Type:           Code{"10200004", "SCT", "Liver"},
		ContentCreator: "CONCORD^SITE-AGENT",
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, ims, w
}

// TestSegWriteReadBack writes a SEG and reads it back with ReadSegmentation: same
// masks (at the source's 512x512), frames tied to the source instances, the study
// kept and a new series.
func TestSegWriteReadBack(t *testing.T) {
	path, ims, w := segFixture(t)
	s, err := ReadSegmentation(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows != 512 || s.Columns != 512 || s.Type != "BINARY" || len(s.Frames) != 3 || len(s.Segments) != 1 || s.Segments[0].Label != "Liver" {
		t.Fatalf("read back %dx%d %s %d frames %+v", s.Rows, s.Columns, s.Type, len(s.Frames), s.Segments)
	}
	on := 0
	for i, im := range ims {
		m := s.Mask(im.SOPInstanceUID, 1)
		if m == nil {
			t.Fatalf("no frame references source %d", i)
		}
		for k := range m {
			if m[k] != w.Masks[i][k] {
				t.Fatalf("source %d pixel %d: read %d, wrote %d", i, k, m[k], w.Masks[i][k])
			}
			on += int(m[k])
		}
	}
	if on == 0 {
		t.Fatal("no foreground read back: the liver masks should survive the round trip")
	}
	im, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if im.StudyInstanceUID != ims[0].StudyInstanceUID || im.SeriesInstanceUID == ims[0].SeriesInstanceUID || im.SOPInstanceUID != w.SOPInstanceUID {
		t.Fatalf("uids: study %s series %s sop %s", im.StudyInstanceUID, im.SeriesInstanceUID, im.SOPInstanceUID)
	}
	if got, want := im.File.Data.String(0x00100020), ims[0].File.Data.String(0x00100020); got != want {
		t.Fatalf("patient id %q, source %q", got, want)
	}
}

func TestResampleNearest(t *testing.T) {
	m := []uint8{1, 0, 0, 1}
	got, err := ResampleNearest(m, 2, 2, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint8{1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("upsampled %v, want %v", got, want)
		}
	}
	if _, err := ResampleNearest(m, 3, 3, 4, 4); err == nil {
		t.Fatal("a 4-value mask declared 3x3 was accepted")
	}
}

// TestSegWritePydicom checks the Segmentation IOD's required attributes with pydicom
// (dcmtk's dciodvfy is not packaged in Debian) and that its pixel decoder unpacks the
// same frames.
func TestSegWritePydicom(t *testing.T) {
	py := testenv.Python(t, "pydicom", "numpy")
	path, ims, w := segFixture(t)
	var srcs []string
	for _, im := range ims {
		srcs = append(srcs, im.SOPInstanceUID)
	}
	var on []string
	for _, m := range w.Masks {
		n := 0
		for _, v := range m {
			n += int(v)
		}
		on = append(on, strconv.Itoa(n))
	}
	out, err := exec.Command(py, "-c", segCheckPy, path, strings.Join(srcs, ","), strings.Join(on, ",")).CombinedOutput()
	if err != nil {
		t.Fatalf("pydicom check: %v\n%s", err, out)
	}
}

// segCheckPy: argv = file, source SOP instance UIDs, foreground count per frame.
const segCheckPy = `
import sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
srcs = sys.argv[2].split(",")
on = [int(x) for x in sys.argv[3].split(",")]
errs = []
def need(ds, kw, where="top"):
    if kw not in ds:
        errs.append("missing %s (%s)" % (kw, where))
for kw in ["SOPClassUID","SOPInstanceUID","StudyInstanceUID","SeriesInstanceUID","Modality","SeriesNumber",
           "InstanceNumber","ContentDate","ContentTime","NumberOfFrames","ImageType","ContentLabel",
           "ContentCreatorName","ContentDescription","SamplesPerPixel","PhotometricInterpretation",
           "Rows","Columns","BitsAllocated","BitsStored","HighBit","PixelRepresentation","LossyImageCompression",
           "SegmentationType","SegmentSequence","SharedFunctionalGroupsSequence","PerFrameFunctionalGroupsSequence",
           "DimensionOrganizationSequence","DimensionIndexSequence","ReferencedSeriesSequence",
           "FrameOfReferenceUID","PositionReferenceIndicator","Manufacturer","ManufacturerModelName",
           "DeviceSerialNumber","SoftwareVersions","PatientName","PatientID","PatientBirthDate","PatientSex",
           "StudyDate","StudyTime","ReferringPhysicianName","StudyID","AccessionNumber","PixelData"]:
    need(ds, kw)
if errs: sys.exit("\n".join(errs))
assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", ds.SOPClassUID
assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY" and ds.BitsAllocated == 1
assert ds.SOPInstanceUID.startswith("2.25.") and ds.SeriesInstanceUID.startswith("2.25.")
seg = ds.SegmentSequence[0]
for kw in ["SegmentNumber","SegmentLabel","SegmentAlgorithmType","SegmentAlgorithmName",
           "SegmentedPropertyCategoryCodeSequence","SegmentedPropertyTypeCodeSequence"]:
    need(seg, kw, "segment")
assert seg.SegmentAlgorithmType == "AUTOMATIC" and seg.SegmentAlgorithmName == "liver-unet v3"
sh = ds.SharedFunctionalGroupsSequence[0]
need(sh, "PixelMeasuresSequence", "shared"); need(sh, "PlaneOrientationSequence", "shared")
ref = [r.ReferencedSOPInstanceUID for r in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
assert sorted(ref) == sorted(srcs), (ref, srcs)
ndim = len(ds.DimensionIndexSequence)
assert int(ds.NumberOfFrames) == len(srcs) == len(ds.PerFrameFunctionalGroupsSequence)
arr = ds.pixel_array
for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
    for kw in ["FrameContentSequence","PlanePositionSequence","SegmentIdentificationSequence","DerivationImageSequence"]:
        need(fg, kw, "frame %d" % i)
    if errs: sys.exit("\n".join(errs))
    assert len(fg.FrameContentSequence[0].DimensionIndexValues) == ndim
    s = fg.DerivationImageSequence[0].SourceImageSequence[0]
    assert s.ReferencedSOPInstanceUID == srcs[i], (i, s.ReferencedSOPInstanceUID)
    assert "PurposeOfReferenceCodeSequence" in s
    assert int(arr[i].sum()) == on[i], (i, int(arr[i].sum()), on[i])
if errs: sys.exit("\n".join(errs))
`

// TestSegWriteGivenUIDs: UIDs the caller gives name the SEG; one that is
// not a UID is refused rather than written.
func TestSegWriteGivenUIDs(t *testing.T) {
	im, err := ReadFile(testenv.Shared(t, "data/dicom/dcmqi/ct-3slice/01.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	src := []SegSource{{Image: im, Mask: make([]uint8, 16), MaskRows: 4, MaskColumns: 4}}
	opt := SegOptions{SegmentLabel: "Liver", AlgorithmName: "liver-unet v3",
		Category: Code{"85756007", "SCT", "Tissue"}, Type: Code{"85756007", "SCT", "Tissue"},
		SeriesInstanceUID: "2.25.1234", SOPInstanceUID: "2.25.5678"}
	w, err := EncodeSegmentation(src, opt)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Read(w.Bytes, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if back.SeriesInstanceUID != "2.25.1234" || back.SOPInstanceUID != "2.25.5678" || w.SOPInstanceUID != "2.25.5678" {
		t.Fatalf("series %s instance %s, want the given 2.25.1234 and 2.25.5678", back.SeriesInstanceUID, back.SOPInstanceUID)
	}
	opt.SOPInstanceUID = "2.25.01"
	if _, err := EncodeSegmentation(src, opt); err == nil || !strings.Contains(err.Error(), "not a valid UID") {
		t.Fatalf("a bad given UID: %v, want it refused", err)
	}
}
