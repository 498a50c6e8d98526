// Package learning owns Concord's local models and the local training loop:
// the "cnn" classifier (a small ResNet-style network) and the "unet"
// segmenter (a two-level 2D U-Net trained with cross-entropy + Dice), their
// weights as one flat float32 vector with a versioned layout manifest, and
// the optimisers (SGD with momentum, Adam), augmentation, class weighting,
// FedProx term, learning-rate schedule and per-example gradient hook that a
// site uses for one round of local training. It also reads MedMNIST .npz
// files. It reads no DICOM: callers turn images into normalised arrays.
//
// # Engine
//
// The issue asks for gorgonia (v0.9.18). Its graph VM runs one op at a time
// with per-op allocation and its float32 matrix multiply is plain Go; a probe
// on the 2-core reference machine measured it at about 0.23x PyTorch. The
// forward and backward passes of the two fixed architectures are therefore
// written directly as im2col + matrix multiply, with a 4×16 AVX2/FMA
// micro-kernel in Go assembly (gemm_amd64.s, no cgo) and portable Go loops
// elsewhere; the purego build tag forces the Go loops. A mini-batch is split
// into fixed-size chunks of 8 examples that run in parallel across cores,
// and their gradients are summed in chunk order. That fixed reduction order
// makes training bit-for-bit deterministic whatever GOMAXPROCS is, on a given
// CPU kind (the AVX2 kernel and the Go loops round differently). gorgonia
// stays as the independent reference: the tests build the same cnn with
// gorgonia's symbolic differentiation and compare logits, losses and every
// gradient, and check both networks against finite differences.
//
// # Caller's duties
//
//  1. Build a Model with New(spec, seed); the same (spec, seed) always gives
//     the same weights (He-normal from PCG(seed, 0x5eed), zero biases).
//  2. Exchange weights only as Weights()/SetWeights() flat vectors and check
//     Layout().Hash() before combining vectors from different sites.
//  3. Give Train a Dataset whose pixels are already normalised and a context
//     the caller cancels to stop it. Train is deterministic for a given
//     (initial weights, data, TrainConfig), restarts the optimiser state on
//     every call (one call is one federated round) and is not safe for
//     concurrent use on one Model.
//  4. For DP-SGD, pass a PerExampleHook: the trainer then materialises one
//     gradient per example and leaves clipping and noise to the hook, which
//     owns its random source.
package learning
