package siteagent

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func segSpec(t *testing.T, size int) *pb.JobSpec {
	t.Helper()
	s := &pb.JobSpec{Model: &pb.ModelSpec{Arch: "unet", Channels: 1, Height: uint32(size), Width: uint32(size)},
		Pipeline: &pb.PipelineSpec{Normalise: "ct-window:40:400"}}
	jobspec.Defaults(s)
	return s
}

// TestSegFolderDICOMSEG reads the real dcmqi CT slices and the DICOM SEG
// that references them: every slice gets its liver mask, resampled to the
// job's size and binary.
func TestSegFolderDICOMSEG(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/dcmqi")
	src := &SegFolder{Dir: dir}
	ds, err := src.Dataset(context.Background(), segSpec(t, 64))
	if err != nil {
		t.Fatal(err)
	}
	if ds.N != 3 || len(ds.X) != 3*64*64 || len(ds.Masks) != 3*64*64 {
		t.Fatalf("%d examples, %d pixels, %d mask values (rejected %v)", ds.N, len(ds.X), len(ds.Masks), src.Rejected)
	}
	for i := 0; i < ds.N; i++ {
		on := 0
		for _, v := range ds.Masks[i*64*64 : (i+1)*64*64] {
			switch v {
			case 1:
				on++
			case 0:
			default:
				t.Fatalf("mask value %v: want 0 or 1", v)
			}
		}
		// The liver covers thousands of the 512x512 pixels: tens to
		// hundreds at 64x64, never half the slice.
		if on < 16 || on > 64*64/2 {
			t.Errorf("slice %d: %d foreground pixels of %d", i, on, 64*64)
		}
	}
	// The same folder is no data for a classifier's job.
	cnn := segSpec(t, 64)
	cnn.Model.Arch = "cnn"
	if _, err := src.Dataset(context.Background(), cnn); err == nil || !strings.Contains(err.Error(), `the job's model (model.arch "cnn") classifies`) {
		t.Fatalf("segmentation data for a cnn job: %v", err)
	}
}

// writeSlice writes a 32x32 CT-like DICOM image and, when maskSide > 0, a
// PNG mask of maskSide x maskSide beside it (a centred square).
func writeSlice(t *testing.T, dir, name string, i, maskSide int) {
	t.Helper()
	const n = 32
	px := make([]uint16, n*n)
	for k := range px {
		px[k] = 1024 + 40
		if y, x := k/n, k%n; y >= 8 && y < 24 && x >= 8 && x < 24 {
			px[k] = 1024 + 200
		}
	}
	uid := fmt.Sprintf("2.25.%d", 1000+i)
	if err := imaging.WriteFile(filepath.Join(dir, name+".dcm"), imaging.SyntheticFile{Pixels: px, Rows: n, Columns: n, BitsStored: 12,
		Modality: "CT", RescaleSlope: 1, RescaleIntercept: -1024, StudyInstanceUID: uid + ".1", SeriesInstanceUID: uid + ".2", SOPInstanceUID: uid + ".3"}); err != nil {
		t.Fatal(err)
	}
	if maskSide == 0 {
		return
	}
	m := image.NewGray(image.Rect(0, 0, maskSide, maskSide))
	for y := maskSide / 4; y < 3*maskSide/4; y++ {
		for x := maskSide / 4; x < 3*maskSide/4; x++ {
			m.Pix[y*m.Stride+x] = 255
		}
	}
	f, err := os.Create(filepath.Join(dir, name+".mask.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, m); err != nil {
		t.Fatal(err)
	}
}

// TestSegFolderPNG reads PNG masks beside their images; a mask of another
// size than its image and an image without a mask are skipped with their
// reasons, and a folder with no usable pair is refused naming them.
func TestSegFolderPNG(t *testing.T) {
	dir := t.TempDir()
	writeSlice(t, dir, "a", 1, 32)
	writeSlice(t, dir, "b", 2, 16) // wrong size
	writeSlice(t, dir, "c", 3, 0)  // no mask
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeSlice(t, filepath.Join(dir, "sub"), "d", 4, 32)
	src := &SegFolder{Dir: dir}
	if n := src.Examples(); n != 4 {
		t.Fatalf("Examples %d, want 4 images", n)
	}
	ds, err := src.Dataset(context.Background(), segSpec(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	if ds.N != 2 {
		t.Fatalf("%d examples, want 2 (rejected %v)", ds.N, src.Rejected)
	}
	on := 0
	for _, v := range ds.Masks[:32*32] {
		if v == 1 {
			on++
		}
	}
	if on != 16*16 {
		t.Fatalf("mask of a: %d foreground pixels, want %d", on, 16*16)
	}
	if src.Rejected["png mask: mask is 16x16, image is 32x32"] != 1 || len(src.Rejected) != 2 {
		t.Fatalf("rejected %v", src.Rejected)
	}

	bad := t.TempDir()
	writeSlice(t, bad, "b", 2, 16)
	_, err = (&SegFolder{Dir: bad}).Dataset(context.Background(), segSpec(t, 32))
	if err == nil || !strings.Contains(err.Error(), "1 png mask: mask is 16x16, image is 32x32") || !errors.Is(err, ErrPermanent) {
		t.Fatalf("a folder of mismatched masks: %v", err)
	}
	if strings.Contains(err.Error(), bad) {
		t.Fatalf("the error names a path: %v", err)
	}
}

// TestUNetJobOnClassFolder: a classifier's data (labels, no masks) is
// refused for a unet job with what to configure.
func TestUNetJobOnClassFolder(t *testing.T) {
	src := MemoryData{Data: learning.Dataset{N: 1, C: 1, H: 32, W: 32, X: make([]float32, 32*32), Y: []int{1}}}
	_, err := src.Dataset(context.Background(), segSpec(t, 32))
	if err == nil || !strings.Contains(err.Error(), "set data.layout: segmentation") || !errors.Is(err, ErrPermanent) {
		t.Fatalf("class data for a unet job: %v", err)
	}
}
