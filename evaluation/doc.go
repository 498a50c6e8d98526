// Package evaluation owns the clinical metrics Concord reports for a model and
// the data splits used to estimate them: sensitivity, specificity, precision,
// F1, accuracy, balanced accuracy, ROC AUC, Dice and IoU, each with a 95%
// confidence interval, operating-point selection (Youden's J or a target
// sensitivity), stratified k-fold splits inside a site and leave-one-site-out
// splits across a federation; the Assessment a validation site reports for
// a model: those metrics, a bounded ROC curve, a calibration table, and
// per-subgroup figures with small subgroups suppressed; and the population
// stability index that says whether the data arriving at a site has
// drifted from the data a model was trained on (drift.go).
//
// Everything here is pure computation on plain slices: no I/O, no clock, no
// goroutines, and bootstrap intervals use a fixed seed so a report can be
// reproduced bit for bit.
//
// The caller's duties:
//  1. Pass scores where a higher value means "more likely positive" and labels
//     that are 0 (negative) or 1 (positive); multi-class labels are 0..K-1.
//  2. Choose the operating threshold on validation data (Youden or
//     ThresholdAtSensitivity) and report metrics on separate test data;
//     choosing it on the test set inflates every figure.
//  3. Check the returned error: bad input (mismatched lengths, NaN scores,
//     labels outside 0/1, a single class where AUC needs two) is reported,
//     never guessed around.
//
// Conventions follow scikit-learn so figures can be checked against it: a
// sample is predicted positive when score >= threshold, AUC ties count half,
// and a ratio with a zero denominator (precision with no predicted
// positives, for example) is 0 with the uninformative interval [0, 1].
package evaluation
