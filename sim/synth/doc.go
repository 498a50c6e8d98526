// Package synth owns Concord's synthetic hospital data: chest-radiograph-like
// images with and without a lesion, generated per hospital with that
// hospital's own scanner characteristics and label mix, written as real DICOM
// files, and the partitioning of a labelled data set among simulated sites.
//
// Everything here is deterministic given its seed, so a simulator run, a
// figure or a failing test can be reproduced exactly.
//
// The task is calibrated to be learnable but not at once: on 3 hospitals
// of 160 images at 32x32, a small CNN trained centrally with Adam reaches
// a test AUC of about 0.7..0.9 after one epoch and 0.94 after ten, and a
// logistic regression on 16x16 pixels about 0.9.
//
// The caller's duties:
//
//  1. Describe the sites with [Hospitals] (or fill [Hospital] by hand and
//     check it with [Hospital.Validate]).
//  2. Either keep the pixels in memory with [Generate] and feed
//     [Sample.Input] to a model, or write DICOM files with [WriteDICOM] and
//     read them back through the imaging pipeline, which is what a real site
//     does. Take labels from the manifest (or name the classes
//     {"normal", "lesion"} in that order): folder names sorted
//     alphabetically would swap them.
//  3. Draw a held-out set for the same hospital with a different seed: it
//     has other patients and the same scanner.
//  4. To split an existing labelled data set (for example MedMNIST) among
//     sites, call [Partition] with "iid" or "dirichlet:ALPHA"; every site gets
//     at least [MinPerSite] samples or an error explains why that cannot be.
//
// The patient identifiers are fake and obviously so (family names start
// with "ZZSYNTH", IDs with "SYN"), but they have the formats of real ones so
// that de-identification code has something real to remove. Callers still
// must never log them.
package synth
