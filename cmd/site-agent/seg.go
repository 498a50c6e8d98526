package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/learning"
)

// SegReport is the final JSON line of `site-agent train --model unet --json`.
type SegReport struct {
	Model        string    `json:"model"`
	Slices       int       `json:"slices"`
	Size         int       `json:"size"`
	Steps        int       `json:"steps"`
	TrainSeconds float64   `json:"train_seconds"`
	FinalLoss    float64   `json:"final_loss"`
	TrainDice    float64   `json:"train_dice"`
	HeldOutDice  float64   `json:"held_out_dice"`
	SliceDice    []float64 `json:"slice_dice"` // per slice, in file-name order
	HeldOut      int       `json:"held_out"`   // index of the slice left out of training
}

// trainSeg trains the U-Net on CT slices and their DICOM SEG mask, leaving
// the middle slice out, and reports Dice at probability 0.5.
func trainSeg(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	fs := c.NewFlagSet(stderr)
	fs.String("model", "unet", "model architecture")
	ctDir := fs.String("ct", "", "folder of CT slices (.dcm) that the SEG references (required)")
	segPath := fs.String("seg", "", "DICOM SEG file with the mask (required)")
	size := fs.Int("size", 128, "side the slices are average-pooled to (divides their size, divisible by 4)")
	steps := fs.Int("steps", 300, "optimiser steps")
	width := fs.Int("width", 8, "U-Net base width")
	lr := fs.Float64("lr", 3e-3, "Adam learning rate")
	seed := fs.Int64("seed", 1, "seed")
	asJSON := fs.Bool("json", false, "print the result as one JSON line on stdout")
	wl := fs.Float64("window-center", 40, "CT window centre (HU) mapped to 0")
	ww := fs.Float64("window-width", 400, "CT window width (HU) mapped to [-1, 1]")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	if *ctDir == "" || *segPath == "" {
		return c.Usagef(stderr, "--model unet needs --ct DIR and --seg FILE")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ds, err := loadCTSeg(*ctDir, *segPath, *size, *wl, *ww)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if ds.N < 2 {
		fmt.Fprintf(stderr, "train: %d slice(s) with a mask; need at least 2 to hold one out\n", ds.N)
		return 1
	}
	held := ds.N / 2
	var trainIdx []int
	for i := 0; i < ds.N; i++ {
		if i != held {
			trainIdx = append(trainIdx, i)
		}
	}
	train := subsetSeg(ds, trainIdx)
	m, err := learning.New(learning.Spec{Arch: "unet", Channels: 1, Height: *size, Width: *size, BaseWidth: *width}, *seed)
	if err != nil {
		return c.Fail(stderr, err)
	}
	fmt.Fprintf(stderr, "train: unet on %d CT slices at %dx%d (slice %d held out), %d parameters\n", ds.N, *size, *size, held+1, m.Layout().Total)
	res, err := m.Train(ctx, train, learning.TrainConfig{Steps: *steps, BatchSize: train.N, LR: *lr, Augment: true, Seed: *seed,
		ProgressEvery: 10, Progress: func(p learning.TrainProgress) {
			fmt.Fprintf(stderr, "\rstep %d/%d  loss %.4f ", p.Step, p.Steps, p.Loss)
		}})
	fmt.Fprintln(stderr)
	if err != nil {
		return c.Fail(stderr, err)
	}
	probs, err := m.Predict(ds)
	if err != nil {
		return c.Fail(stderr, err)
	}
	hw := *size * *size
	rep := SegReport{Model: "unet", Slices: ds.N, Size: *size, Steps: res.Steps, TrainSeconds: res.Seconds,
		FinalLoss: res.FinalLoss, HeldOut: held}
	var trainSum float64
	for i := 0; i < ds.N; i++ {
		d, _, err := evaluation.Overlap(probs[i*hw:(i+1)*hw], ds.Masks[i*hw:(i+1)*hw], 0.5)
		if err != nil {
			return c.Fail(stderr, err)
		}
		rep.SliceDice = append(rep.SliceDice, d)
		if i == held {
			rep.HeldOutDice = d
		} else {
			trainSum += d
		}
	}
	rep.TrainDice = trainSum / float64(ds.N-1)
	fmt.Fprintf(stderr, "train: dice on training slices %.4f, on the held-out slice %.4f (%.0fs)\n", rep.TrainDice, rep.HeldOutDice, rep.TrainSeconds)
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "dice train %.4f held-out %.4f\n", rep.TrainDice, rep.HeldOutDice)
	}
	return 0
}

func subsetSeg(ds learning.Dataset, idx []int) learning.Dataset {
	hw := ds.H * ds.W
	out := ds.Subset(idx)
	out.Masks = make([]float32, len(idx)*hw)
	for j, i := range idx {
		copy(out.Masks[j*hw:(j+1)*hw], ds.Masks[i*hw:(i+1)*hw])
	}
	return out
}

// loadCTSeg reads the CT slices of dir that the SEG has a mask for,
// windows them to [-1, 1] and average-pools image and mask to size×size.
func loadCTSeg(dir, segPath string, size int, center, width float64) (learning.Dataset, error) {
	seg, err := imaging.ReadSegmentation(segPath)
	if err != nil {
		return learning.Dataset{}, fmt.Errorf("read segmentation: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return learning.Dataset{}, fmt.Errorf("read ct folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(strings.ToLower(e.Name()), ".dcm") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	ds := learning.Dataset{C: 1, H: size, W: size}
	for _, name := range names {
		im, err := imaging.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return learning.Dataset{}, fmt.Errorf("read ct slice %s: %w", name, err)
		}
		mask := seg.Mask(im.SOPInstanceUID, 0)
		if mask == nil {
			continue // not segmented
		}
		if im.Rows != seg.Rows || im.Columns != seg.Columns || im.Rows != im.Columns || im.Rows%size != 0 {
			return learning.Dataset{}, fmt.Errorf("ct slice %s is %dx%d, mask %dx%d: want equal squares divisible by %d", name, im.Rows, im.Columns, seg.Rows, seg.Columns, size)
		}
		px, err := im.Frame(0)
		if err != nil {
			return learning.Dataset{}, fmt.Errorf("decode ct slice %s: %w", name, err)
		}
		f := im.Rows / size
		img := make([]float32, size*size)
		msk := make([]float32, size*size)
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				var s, ms float64
				for dy := 0; dy < f; dy++ {
					for dx := 0; dx < f; dx++ {
						k := (y*f+dy)*im.Columns + x*f + dx
						s += math.Min(math.Max((float64(px[k])-center)/(width/2), -1), 1)
						if mask[k] > 0 {
							ms++
						}
					}
				}
				img[y*size+x] = float32(s / float64(f*f))
				msk[y*size+x] = float32(ms / float64(f*f))
			}
		}
		ds.X = append(ds.X, img...)
		ds.Masks = append(ds.Masks, msk...)
		ds.N++
	}
	if ds.N == 0 {
		return learning.Dataset{}, errors.New("no ct slice in the folder is referenced by the segmentation")
	}
	return ds, nil
}
