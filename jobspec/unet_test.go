package jobspec

import (
	"strings"
	"testing"

	"github.com/concord-fl/concord/learning"
)

const unetJob = `name: liver
model: {arch: unet, height: 64, width: 64}
rounds: 5
sites: [st-marys, city-general]
validation_sites: [north]
validation: {min_dice: 0.7}
pipeline: {normalise: ct-window:40:400}
`

// TestUNetJob parses a segmentation job: the U-Net's defaults (one
// foreground class, base width 8) are filled, the Dice gate is accepted,
// and the converted spec builds the model package learning trains.
func TestUNetJob(t *testing.T) {
	s, err := Parse([]byte(unetJob))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Model
	if m.Arch != "unet" || m.Classes != 1 || m.BaseWidth != 8 || m.Norm != "" {
		t.Fatalf("unet defaults: %+v", m)
	}
	if s.Validation.MinDice != 0.7 {
		t.Fatalf("min_dice %v", s.Validation.MinDice)
	}
	mod, err := learning.New(ModelSpec(s), s.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if l := mod.Layout(); l.Arch != "unet" || l.Version != learning.UNetVersion {
		t.Fatalf("layout %s %s", l.Arch, l.Version)
	}
}

// TestUNetJobRefused breaks one thing of a valid segmentation job at a
// time: each is refused with the field and the reason.
func TestUNetJobRefused(t *testing.T) {
	cases := []struct{ name, edit, want string }{
		{"two classes", "model: {arch: unet, height: 64, width: 64, classes: 2}",
			"model.classes is 2: a unet segments one foreground"},
		{"classifier norm", "model: {arch: unet, height: 64, width: 64, norm: group}",
			`model.norm is "group": it applies to the cnn only`},
		{"AUC gate", "validation: {min_auc: 0.8}",
			"classification gates: a segmentation job uses validation.min_dice"},
		{"sensitivity gate", "validation: {min_dice: 0.7, min_sensitivity: 0.8}",
			"classification gates: a segmentation job uses validation.min_dice"},
		{"class weights", "training: {class_weighting: balanced}",
			`training.class_weighting is "balanced": a segmentation model's Dice + cross-entropy loss has no class weights`},
		{"odd size", "model: {arch: unet, height: 62, width: 64}\npipeline: {height: 62}",
			"model.height is 62: a multiple of 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := replaceSection(unetJob, c.edit)
			_, err := Parse([]byte(job))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant an error containing %q\njob:\n%s", err, c.want, job)
			}
		})
	}
	// The Dice gate stays refused on a classifier.
	cnn := strings.Replace(unetJob, "arch: unet", "arch: cnn", 1)
	if _, err := Parse([]byte(cnn)); err == nil || !strings.Contains(err.Error(), "validation.min_dice is a segmentation gate") {
		t.Fatalf("min_dice on a cnn: %v", err)
	}
}

// replaceSection replaces the job's top-level lines that start with each
// edit line's key (up to the colon), or appends the line.
func replaceSection(job, edit string) string {
	lines := strings.Split(strings.TrimSuffix(job, "\n"), "\n")
	for _, e := range strings.Split(edit, "\n") {
		key := e[:strings.Index(e, ":")+1]
		done := false
		for i, l := range lines {
			if strings.HasPrefix(l, key) {
				lines[i], done = e, true
			}
		}
		if !done {
			lines = append(lines, e)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
