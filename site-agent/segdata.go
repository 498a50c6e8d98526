package siteagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// SegFolder reads a site's segmentation data: images with a foreground
// mask each, for jobs whose model.arch is unet. The layout, under Dir
// (sub-folders allowed):
//
//	slice-001.dcm         an image (CT, MR, ...)
//	slice-001.mask.png    its mask: a PNG beside it, same rows and columns,
//	                      non-zero pixels are foreground
//	liver-seg.dcm         or a DICOM SEG whose frames reference images of
//	                      the folder by SOP Instance UID
//
// An image with a PNG mask uses it; otherwise the union of the SEG frames
// that reference it (of segment Segment, 0 meaning every segment); an
// image with neither is not a training example and is counted as such. A
// mask of another size than its image, an unreadable mask, or an image
// with both kinds of mask (which one is the truth?) is skipped and counted
// by reason, never fatal; the reasons carry sizes and categories, never a
// path or identifier. The image goes through the job's pipeline; its mask
// is area-resampled to the same size and thresholded at one half, so the
// model is trained and scored on hard 0/1 masks.
type SegFolder struct {
	Dir string
	// Segment selects one segment of the DICOM SEGs by number; 0 is the
	// union of all.
	Segment       int
	AllowBurnedIn bool
	Logger        *slog.Logger

	mu    sync.Mutex
	cache map[string]learning.Dataset
	// Rejected counts the files of the last load that gave no example, by
	// reason.
	Rejected map[string]int
}

// maxSegFiles bounds the files a SegFolder lists, so a mistaken Dir (a
// whole disk) is refused instead of exhausting memory.
const maxSegFiles = 1_000_000

// maskSuffix names an image's PNG mask: the image's name without .dcm,
// plus this.
const maskSuffix = ".mask.png"

// Examples implements Counter: the DICOM files of the folder (images
// without a mask, and the SEG objects, are counted until a job loads them).
func (d *SegFolder) Examples() int {
	n, _ := d.Check()
	return n
}

// Check implements Checker.
func (d *SegFolder) Check() (int, string) {
	files, _, err := d.list()
	switch {
	case err != nil:
		return 0, fmt.Sprintf("the segmentation data folder cannot be read (%s): check data.dir and give the agent's user read access", errKind(err))
	case len(files) == 0:
		return 0, "the segmentation data folder has no .dcm files: see the layout in the README (Federated segmentation)"
	}
	return len(files), ""
}

// list returns the .dcm files and the PNG masks under Dir, sorted.
func (d *SegFolder) list() (dcm []string, masks map[string]bool, err error) {
	masks = map[string]bool{}
	n := 0
	err = filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		if n++; n > maxSegFiles {
			return fmt.Errorf("more than %d files: point data.dir at the segmentation data only", maxSegFiles)
		}
		name := strings.ToLower(e.Name())
		switch {
		case strings.HasSuffix(name, maskSuffix):
			masks[p] = true
		case strings.HasSuffix(name, ".dcm"):
			dcm = append(dcm, p)
		}
		return nil
	})
	sort.Strings(dcm)
	return dcm, masks, err
}

// Dataset implements DataSource.
func (d *SegFolder) Dataset(ctx context.Context, spec *pb.JobSpec) (learning.Dataset, error) {
	if !jobspec.Segments(spec) {
		return learning.Dataset{}, permanentf("this site holds segmentation data (images with masks); the job's model (model.arch %q) classifies", spec.GetModel().GetArch())
	}
	pl := jobspec.PipelineConfig(spec)
	if err := pl.Validate(); err != nil {
		return learning.Dataset{}, permanent(fmt.Errorf("the job's pipeline: %w", err))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := fmt.Sprintf("%s/%d", pl.Hash(), d.Segment)
	if ds, ok := d.cache[key]; ok {
		return ds, checkShape(ds, spec)
	}
	ds, rejected, err := d.load(ctx, pl)
	if err != nil {
		return learning.Dataset{}, err
	}
	d.Rejected = rejected
	if d.Logger != nil && len(rejected) > 0 {
		d.Logger.Warn("some images were skipped", "decoded", ds.N, "rejected", rejected)
	}
	if ds.N == 0 {
		return ds, permanentf("no image with a usable mask in the data folder (skipped: %s): see the segmentation layout in the README", reasonList(rejected))
	}
	if d.cache == nil {
		d.cache = map[string]learning.Dataset{}
	}
	clear(d.cache) // one job's tensors at a time: a site's data can be large
	d.cache[key] = ds
	return ds, checkShape(ds, spec)
}

// segImage is one image file that is not a SEG, with what it needs.
type segImage struct {
	path string
	im   *imaging.Image
}

func (d *SegFolder) load(ctx context.Context, pl imaging.Pipeline) (learning.Dataset, map[string]int, error) {
	files, pngs, err := d.list()
	if err != nil {
		return learning.Dataset{}, nil, permanent(fmt.Errorf("the data folder cannot be read (%s)", errKind(err)))
	}
	rejected := map[string]int{}
	var images []segImage
	var segs []*imaging.Segmentation
	for _, p := range files {
		if err := ctx.Err(); err != nil {
			return learning.Dataset{}, nil, err
		}
		im, err := imaging.ReadFile(p)
		if err != nil {
			rejected[imaging.Reason(err)]++
			continue
		}
		if imaging.IsSegmentation(im) {
			s, err := imaging.SegmentationOf(im)
			if err != nil {
				rejected["segmentation: "+imaging.Reason(err)]++
				continue
			}
			segs = append(segs, s)
			continue
		}
		images = append(images, segImage{path: p, im: im})
	}
	hw := pl.Height * pl.Width
	ds := newDataset(pl)
	for _, si := range images {
		if err := ctx.Err(); err != nil {
			return learning.Dataset{}, nil, err
		}
		im := si.im
		mask, reason := d.mask(si, pngs, segs)
		if reason != "" {
			rejected[reason]++
			continue
		}
		px, reason := standardiseImage(im, pl, d.AllowBurnedIn)
		if reason != "" {
			rejected[reason]++
			continue
		}
		m := imaging.ResizeArea(mask, im.Columns, im.Rows, pl.Width, pl.Height)
		for k, v := range m {
			m[k] = 0
			if v >= 0.5 {
				m[k] = 1
			}
		}
		// Masks, not labels: a segmentation example has no class.
		ds.X = append(ds.X, px...)
		ds.Masks = append(ds.Masks, m[:hw]...)
		ds.N++
		for f, v := range im.Groups() {
			ds.Groups[f] = append(ds.Groups[f], v)
		}
	}
	return ds, rejected, nil
}

// mask returns an image's mask as 0/1 values at the image's size, or why
// the image is skipped.
func (d *SegFolder) mask(si segImage, pngs map[string]bool, segs []*imaging.Segmentation) ([]float32, string) {
	im := si.im
	pngPath := strings.TrimSuffix(si.path, filepath.Ext(si.path)) + maskSuffix
	var fromSeg []uint8
	var segRows, segCols int
	for _, s := range segs {
		if m := s.Mask(im.SOPInstanceUID, d.Segment); m != nil {
			if fromSeg != nil {
				return nil, "referenced by two DICOM SEGs: keep one"
			}
			fromSeg, segRows, segCols = m, s.Rows, s.Columns
		}
	}
	var raw []uint8
	switch {
	case pngs[pngPath] && fromSeg != nil:
		return nil, "both a PNG mask and a DICOM SEG: keep one"
	case pngs[pngPath]:
		m, err := imaging.LoadPNGMask(pngPath, im.Rows, im.Columns)
		if err != nil {
			return nil, "png mask: " + maskReason(err)
		}
		raw = m
	case fromSeg != nil:
		if segRows != im.Rows || segCols != im.Columns {
			return nil, fmt.Sprintf("segmentation: mask is %dx%d, image is %dx%d", segCols, segRows, im.Columns, im.Rows)
		}
		raw = fromSeg
	default:
		return nil, "no mask (no " + maskSuffix + " beside it, no DICOM SEG references it)"
	}
	out := make([]float32, len(raw))
	for k, v := range raw {
		if v > 0 {
			out[k] = 1
		}
	}
	return out, ""
}

// maskReason is the reason of a PNG mask error without a path: the size
// mismatch is said as is (it names sizes only).
func maskReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return errKind(err)
	}
	if errors.Is(err, os.ErrNotExist) {
		return "not found"
	}
	return strings.TrimPrefix(err.Error(), "load mask: ")
}

// reasonList writes counted reasons in a stable order.
func reasonList(r map[string]int) string {
	if len(r) == 0 {
		return "nothing"
	}
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", r[k], k)
	}
	return strings.Join(parts, "; ")
}

// checkMasks refuses data without a mask per image for a unet job: a
// classifier's folder (labels, no masks) says so instead of failing in
// training.
func checkMasks(d learning.Dataset) error {
	if len(d.Masks) != d.N*d.H*d.W {
		return permanentf("the job's model segments but the site's data has no mask per image: " +
			"set data.layout: segmentation in agent.yaml with images and their masks (README: Federated segmentation)")
	}
	return nil
}
