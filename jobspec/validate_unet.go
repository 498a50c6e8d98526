package jobspec

import (
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// ArchUNet is model.arch of a segmentation job: the two-level U-Net of
// package learning, one foreground class against background, trained on
// Dice + cross-entropy and validated by Dice (validation.min_dice).
const ArchUNet = "unet"

// unetDefaults fills the U-Net's own defaults before the shared ones: one
// foreground class, base width 8 (learning's default for it).
func unetDefaults(m *pb.ModelSpec) {
	m.Classes = orU(m.Classes, 1)
	m.BaseWidth = orU(m.BaseWidth, 8)
}

// unetModel checks what only a U-Net constrains: it segments exactly one
// foreground, and a classifier's normalisation option does not apply to it.
func (v *validator) unetModel(m *pb.ModelSpec) bool {
	ok := true
	if m.Classes != 1 {
		v.bad("model.classes is %d: a unet segments one foreground against background, so classes is 1 (or left out)", m.Classes)
		ok = false
	}
	if m.Norm != "" {
		v.bad("model.norm is %s: it applies to the cnn only; remove it for a unet", quote(m.Norm))
		ok = false
	}
	return ok
}

// unetTraining refuses training options a U-Net would ignore: class
// weights weigh a classifier's labels, and a mask has none (Dice in the
// loss already balances a small foreground).
func (v *validator) unetTraining(t *pb.TrainingSpec) {
	if t.ClassWeighting != "none" {
		v.bad("training.class_weighting is %s: a segmentation model's Dice + cross-entropy loss has no class weights; remove it", quote(t.ClassWeighting))
	}
}
