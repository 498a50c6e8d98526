package sim

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
	"github.com/concord-fl/concord/sim/synth"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// generatedSize is the default model input for generated hospitals.
const generatedSize = 32

// generatedPipeline standardises the generated radiographs: area
// resampling to size×size and a per-image z-score, which removes each
// scanner's intensity scale and offset (the per-modality "auto" setting
// maps to [0, 1], which the small cnn learns from more slowly).
func generatedPipeline(size int) *pb.PipelineSpec {
	return &pb.PipelineSpec{Width: uint32(size), Height: uint32(size), Channels: 1, Resample: "area", Normalise: "zscore"}
}

// generatedSites writes each synthetic hospital's images as real DICOM
// files and gives each site a DICOMFolder over its own folder, so the
// images go through the same imaging pipeline a real site runs. A held-out
// test set per hospital (other patients, same scanner) is decoded the same
// way for evaluation.
func generatedSites(ctx context.Context, cfg Config, dir string) (*siteData, error) {
	hospitals := synth.Hospitals(cfg.Sites, cfg.Seed)
	size := cfg.Size
	sd := &siteData{counts: map[string]int{}, posRat: map[string]float64{}, size: size}
	spec := &pb.JobSpec{Model: &pb.ModelSpec{Channels: 1, Height: uint32(size), Width: uint32(size), Classes: 2},
		Pipeline: generatedPipeline(size)}
	classes := []string{"normal", "lesion"}
	for i, h := range hospitals {
		h.N = cfg.ImagesPerSite
		if size > generatedSize {
			// Native sizes (48..96 at the default input) grow with the
			// input, so that a large model is not fed upsampled images.
			h.Size = h.Size * size / generatedSize
		}
		name := h.Slug()
		validates := i >= len(hospitals)-cfg.ValidationSites
		if _, err := synth.WriteDICOM(filepath.Join(dir, "train"), h, cfg.Seed+int64(i)); err != nil {
			return nil, fmt.Errorf("generate %s: %w", h.Name, err)
		}
		src := &siteagent.DICOMFolder{Dir: filepath.Join(dir, "train", name), Classes: classes}
		ds, err := src.Dataset(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("site %s: %w", name, err)
		}
		sd.names = append(sd.names, name)
		sd.data = append(sd.data, src)
		sd.counts[name] = ds.N
		sd.posRat[name] = positiveRate(ds.Y)
		if validates {
			// A validation hospital never trains: all its images are
			// held out from training, and it scores each round's model
			// on them.
			sd.validation = append(sd.validation, name)
		} else {
			sd.train += ds.N
		}
		test := h
		test.N = max(cfg.ImagesPerSite/2, 20)
		if _, err := synth.WriteDICOM(filepath.Join(dir, "test"), test, cfg.Seed+1000+int64(i)); err != nil {
			return nil, err
		}
		tds, err := (&siteagent.DICOMFolder{Dir: filepath.Join(dir, "test", name), Classes: classes}).Dataset(ctx, spec)
		if err != nil {
			return nil, err
		}
		sd.test = concat(sd.test, tds)
	}
	return sd, nil
}

// medmnistSites partitions a MedMNIST training split among the sites; the
// official test split is the held-out set.
func medmnistSites(cfg Config) (*siteData, error) {
	mm, err := learning.LoadMedMNIST(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	if mm.Classes != 2 {
		return nil, fmt.Errorf("%s has %d classes; the simulator's metrics are for binary tasks", cfg.Dataset, mm.Classes)
	}
	training := cfg.Sites - cfg.ValidationSites
	parts, err := synth.Partition(mm.Train.Y, training, cfg.Partition, cfg.Seed)
	if err != nil {
		return nil, err
	}
	sd := &siteData{counts: map[string]int{}, posRat: map[string]float64{}, size: mm.Train.H, test: mm.Test}
	add := func(name string, ds learning.Dataset) {
		sd.names = append(sd.names, name)
		sd.data = append(sd.data, siteagent.MemoryData{Data: ds})
		sd.counts[name] = ds.N
		sd.posRat[name] = positiveRate(ds.Y)
	}
	for i, idx := range parts {
		ds := mm.Train.Subset(idx)
		add(fmt.Sprintf("hospital-%02d", i+1), ds)
		sd.train += ds.N
	}
	if cfg.ValidationSites > 0 {
		// Validation sites score on the official test split, shared
		// among them without overlap; when they choose the settings of a
		// tuned job, on the validation split, so that the test split stays
		// unseen by every choice.
		held := mm.Test
		if cfg.tunes() {
			held = mm.Val
		}
		vparts, err := synth.Partition(held.Y, cfg.ValidationSites, "iid", cfg.Seed+1)
		if err != nil {
			return nil, err
		}
		for i, idx := range vparts {
			name := fmt.Sprintf("hospital-%02d", training+i+1)
			add(name, held.Subset(idx))
			sd.validation = append(sd.validation, name)
		}
	}
	return sd, nil
}

func positiveRate(y []int) float64 {
	if len(y) == 0 {
		return 0
	}
	n := 0
	for _, v := range y {
		if v == 1 {
			n++
		}
	}
	return float64(n) / float64(len(y))
}

func concat(a, b learning.Dataset) learning.Dataset {
	if a.N == 0 {
		return b
	}
	a.X = append(a.X, b.X...)
	a.Y = append(a.Y, b.Y...)
	if a.Groups != nil || b.Groups != nil {
		g := map[string][]string{}
		for f := range a.Groups {
			g[f] = nil
		}
		for f := range b.Groups {
			g[f] = nil
		}
		for f := range g {
			g[f] = slices.Concat(pad(a.Groups[f], a.N), pad(b.Groups[f], b.N))
		}
		a.Groups = g
	}
	a.N += b.N
	return a
}

// pad is v, or n unknown values when v is missing.
func pad(v []string, n int) []string {
	if v == nil {
		return make([]string, n)
	}
	return v
}

// secureBytesPerParam is the upload size per parameter per site the
// coordinator measured in the job's rounds.
func secureBytesPerParam(f *Federation, jobID string, params int) float64 {
	j, err := f.Admin.GetJob(context.Background(), &pb.GetJobRequest{JobId: jobID})
	if err != nil || len(j.Rounds) == 0 {
		return 0
	}
	return j.Rounds[len(j.Rounds)-1].Metrics["upload_bytes_per_param"]
}
