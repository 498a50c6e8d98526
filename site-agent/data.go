package siteagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/jobspec"

	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Counter is an optional ability of a DataSource: how many examples the
// site holds. The agent reports the count (nothing else) to the
// coordinator so the admin sees it in `concordctl sites list`.
type Counter interface {
	Examples() int
}

// MemoryData serves a dataset already in memory, already standardised to
// the job's input size (the simulator's sites, a dry run). Its Groups, when
// set, are what a validation task reports subgroups by.
type MemoryData struct {
	Data learning.Dataset
}

// Examples implements Counter.
func (m MemoryData) Examples() int { return m.Data.N }

// Dataset implements DataSource.
func (m MemoryData) Dataset(_ context.Context, spec *pb.JobSpec) (learning.Dataset, error) {
	return m.Data, checkShape(m.Data, spec)
}

func checkShape(d learning.Dataset, spec *pb.JobSpec) error {
	mm := spec.GetModel()
	if d.C != int(mm.GetChannels()) || d.H != int(mm.GetHeight()) || d.W != int(mm.GetWidth()) {
		return permanentf("site data is %dx%dx%d, the job's model takes %dx%dx%d: adjust the job's pipeline",
			d.C, d.H, d.W, mm.GetChannels(), mm.GetHeight(), mm.GetWidth())
	}
	for f, v := range d.Groups {
		if len(v) != d.N {
			return permanentf("the site's data has %d values of subgroup field %q for %d examples", len(v), f, d.N)
		}
	}
	if jobspec.Segments(spec) {
		return checkMasks(d)
	}
	for _, y := range d.Y {
		if y < 0 || y >= int(mm.GetClasses()) {
			return permanentf("the site's data has label %d, outside the job's %d classes: check data.classes against the job's model.classes", y, mm.GetClasses())
		}
	}
	return nil
}

// DICOMFolder reads a site's DICOM images in a folder-per-class layout
// (dir/<class>/**/*.dcm) and runs each through the job's imaging pipeline.
// A file that cannot be decoded is skipped and counted by reason, never
// fatal; files flagged Burned In Annotation = YES are left out unless the
// site opts in. Decoded tensors are cached per pipeline hash.
type DICOMFolder struct {
	Dir string
	// Classes fixes the label order (index = label); empty means the
	// sub-folder names in sorted order.
	Classes       []string
	AllowBurnedIn bool
	// Feedback, when set, is a folder of clinicians' corrections in the same
	// layout; its examples of the data folder's classes are trained on with
	// the data (see FeedbackConfig). Check and Examples count the data
	// folder only.
	Feedback string
	Logger   *slog.Logger

	mu    sync.Mutex
	cache map[string]learning.Dataset
	// Report of the last load: rejected files by reason (no identifiers).
	Rejected map[string]int
	// classFS opens a class folder for counting; nil means os.DirFS. Tests
	// replace it to make a folder unreadable whoever runs them.
	classFS func(dir string) fs.FS
}

// Examples implements Counter: the image files in the class folders (before
// decoding; broken files are counted when a job loads them).
func (d *DICOMFolder) Examples() int {
	n, _ := d.Check()
	return n
}

// Dataset implements DataSource.
func (d *DICOMFolder) Dataset(ctx context.Context, spec *pb.JobSpec) (learning.Dataset, error) {
	pl := jobspec.PipelineConfig(spec)
	if err := pl.Validate(); err != nil {
		return learning.Dataset{}, permanent(fmt.Errorf("the job's pipeline: %w", err))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := pl.Hash() + feedbackKey(d.Feedback)
	if ds, ok := d.cache[key]; ok {
		return ds, checkShape(ds, spec)
	}
	if _, problem := d.Check(); problem != "" {
		return learning.Dataset{}, permanent(errors.New(problem))
	}
	examples, folders, err := imaging.LoadFolderDataset(d.Dir)
	if err != nil {
		// Its message holds paths below the data folder: the check above
		// says what is wrong in words that may leave the site.
		return learning.Dataset{}, fmt.Errorf("the data folder changed while it was being read (%s): try again", errKind(err))
	}
	rejected := map[string]int{}
	if d.Feedback != "" {
		fb, other, err := feedbackExamples(d.Feedback, folders)
		if err != nil {
			return learning.Dataset{}, fmt.Errorf("the feedback folder cannot be read (%s): give the agent's user read access", errKind(err))
		}
		examples = append(examples, fb...)
		if other > 0 {
			rejected["feedback in a class the data folder does not have"] = other
		}
	}
	label := make([]int, len(folders))
	for i, f := range folders {
		label[i] = i
		if len(d.Classes) > 0 {
			label[i] = slices.Index(d.Classes, f)
			if label[i] < 0 {
				return learning.Dataset{}, errors.New("a folder that is not one of data.classes appeared in the data folder while it was being read: try again")
			}
		}
	}
	ds := newDataset(pl)
	// One decoder for the folder: its file and frame buffers are reused from
	// image to image; each image is finished with before the next is read.
	var dec imaging.Decoder
	for _, ex := range examples {
		if err := ctx.Err(); err != nil {
			return learning.Dataset{}, err
		}
		im, err := dec.ReadFile(ex.Path)
		if err != nil {
			rejected[imaging.Reason(err)]++
			continue
		}
		px, reason := standardiseImage(im, pl, d.AllowBurnedIn)
		if reason != "" {
			rejected[reason]++
			continue
		}
		addExample(&ds, px, label[ex.Label], im.Groups())
	}
	d.Rejected = rejected
	if d.Logger != nil && len(rejected) > 0 {
		d.Logger.Warn("some images were skipped", "decoded", ds.N, "rejected", rejected)
	}
	if d.cache == nil {
		d.cache = map[string]learning.Dataset{}
	}
	for k := range d.cache {
		if strings.HasPrefix(k, pl.Hash()) {
			delete(d.cache, k) // the same pipeline with older feedback: superseded
		}
	}
	d.cache[key] = ds
	return ds, checkShape(ds, spec)
}

// standardiseImage runs one decoded image through the job's pipeline, the one
// step every data source shares: its pixels, or why it is skipped (burned-in
// annotation without the site's opt-in, or the pipeline refusing it).
func standardiseImage(im *imaging.Image, pl imaging.Pipeline, allowBurnedIn bool) ([]float32, string) {
	if im.BurnedInAnnotation && !allowBurnedIn {
		return nil, "burned-in annotation (excluded unless the site opts in)"
	}
	px, err := pl.Apply(im, 0)
	if err != nil || len(px) != pl.Channels*pl.Height*pl.Width {
		return nil, "pipeline: " + imaging.Reason(err)
	}
	return px, ""
}

// newDataset is an empty dataset of the pipeline's shape.
func newDataset(pl imaging.Pipeline) learning.Dataset {
	return learning.Dataset{C: pl.Channels, H: pl.Height, W: pl.Width, Groups: map[string][]string{}}
}

// addExample appends one example with its subgroup fields. Only the
// coarse ones are kept (see imaging.Image.Groups): validation reports by
// them; nothing identifying is read.
func addExample(ds *learning.Dataset, px []float32, label int, groups map[string]string) {
	ds.X = append(ds.X, px...)
	ds.Y = append(ds.Y, label)
	ds.N++
	for f, v := range groups {
		ds.Groups[f] = append(ds.Groups[f], v)
	}
}
