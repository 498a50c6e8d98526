// Package learning owns Concord's local models and the local training loop:
// the "cnn" classifier (a small ResNet-style network), the "unet"
// segmenter (a two-level 2D U-Net trained with cross-entropy + Dice) and
// declared graphs ("graph", "resnet18", "resnet34"), their
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
// forward and backward passes are therefore written directly as matrix
// products on micro-kernels in Go assembly (gemm_amd64.s, no cgo): 8×32,
// 6×32 and 4×32 tiles with AVX-512, 6×16 and 4×16 tiles with AVX2/FMA only,
// a 4×2 dot-product tile (the cnn's weight gradients, dense layers) and
// Adam's update; portable Go loops elsewhere (the purego build tag forces
// them). The GEMM driver (gemm.go) packs strips of B into
// contiguous panels, in groups that stay in L2 while each row block of A
// sweeps the group, and reads Bᵀ (a weight gradient's unfolded input)
// through 8×8 register transposes. Every output is the same in-order sum
// of FMAs whichever tile computes it, so the AVX-512 and AVX2 kernels give
// the same bits (TestWideKernelsSameBits).
//
// The cnn keeps its activations in padded planes (a zero border around each
// channel). A 3×3 convolution then never unfolds its input (im2col): the
// kernel reads the nine shifted windows in place through a table of row
// offsets (matmulAccOff), computing h·(w+2) positions whose two junk columns
// per row fall on the border and are zeroed. The input gradient is the
// convolution of the output gradient with the flipped kernel, read the same
// way (no col2im scatter), and the weight gradient is a dot product of the
// output gradient with each window, both running along the image (dotAcc).
// Profiling drove this: im2col, col2im and transposes took about half of the
// time of the earlier im2col design, which trained at 0.73× PyTorch.
//
// The cnn normalises each 3×3 convolution's output with GroupNorm (layout
// concord.cnn/2; Spec.Norm "none" gives the plain concord.cnn/1 network).
// GroupNorm, not BatchNorm: it needs no batch statistics, so nothing about
// other examples or other hospitals' data enters an example's output, and
// per-example gradients for DP-SGD stay per-example. A mini-batch is split
// into fixed-size chunks of 8 examples that run in parallel across cores,
// and their gradients are summed in chunk order. That fixed reduction order
// makes training bit-for-bit deterministic whatever GOMAXPROCS is, on any
// x86 CPU with AVX2 or AVX-512 (the Go loops round differently). gorgonia
// stays as the independent reference: the tests build the same cnn with
// gorgonia's symbolic differentiation and compare logits, losses and every
// gradient for the plain network, finite differences check both networks
// with GroupNorm, and package extrainer compares the GroupNorm network with
// PyTorch's (probabilities and one SGD step agree to ~1e-7).
//
// # Declared graphs
//
// Arch "graph" runs a declaration (Spec.Layers; the vocabulary and its
// checks are in graph_spec.go, shapes and layout in graph_shape.go), and the
// families "resnet18" and "resnet34" (resnet.go) expand to one, so that the
// PyTorch trainer needs the manifest only. Each layer's output and gradient
// get their own buffer, allocated once per worker; convolutions share one
// unfolding buffer, recomputed in the backward pass rather than kept per
// layer. A stride-1 convolution whose padding is within its reach (every
// 3×3 of a ResNet or U-Net) runs on shifted windows of a zero-padded copy
// of its input, as the cnn does (graph_shift.go): no im2col or col2im; its
// input gradient convolves the padded output gradient with the kernel
// turned by 180° (the turn is in the window offsets; the input and output
// channels are swapped in a copy of the weights that Train makes once
// per step, for all its workers), and its weight gradient is one A·Bᵀ
// GEMM over the windows. Other convolutions (strided, or 1×1) are im2col plus the GEMM,
// one per group (a 1×1 stride-1 convolution reads its input directly),
// with col2im for the input gradient. GroupNorm and LayerNorm use the
// cnn's vector kernels; pooling, activations, joins, dropout, upsampling
// and the dense backward pass are plain Go. Nothing falls back to
// gorgonia: every op has forward and backward here, checked against finite
// differences and against PyTorch (graph_parity_test.go). resnet18's speed
// against PyTorch CPU is in the README (Models). Dropout draws from a
// generator Train seeds per example (exampleSeeder), so training stays
// deterministic.
//
// # Custom models
//
// Arch "custom" is a consortium's PyTorch module that only external
// trainers run (custom.go). This package holds its layout
// (concord.custom/1: the declared named_parameters() in order, and the
// module's hash) and its seeded initial weights, so the coordinator can
// count, create and aggregate the model without running Python; Train and
// Predict refuse it with ErrCustomCode.
//
// # Caller's duties
//
//  1. Build a Model with New(spec, seed); the same (spec, seed) always gives
//     the same weights (He-normal from PCG(seed, 0x5eed), zero biases,
//     GroupNorm scales 1 and shifts 0).
//  2. Exchange weights only as Weights()/SetWeights() flat vectors and check
//     Layout().Hash() before combining vectors from different sites.
//  3. Give Train a Dataset whose pixels are already normalised and a context
//     the caller cancels to stop it. Train is deterministic for a given
//     (initial weights, data, TrainConfig), restarts the optimiser state on
//     every call (one call is one federated round) and is not safe for
//     concurrent use on one Model.
//  4. For DP-SGD, pass a PerExampleHook (dp.SGD): the trainer then
//     materialises one gradient per example and leaves clipping and noise to
//     the hook, which owns its random source. Set SampleRate for the Poisson
//     sampling the accountant assumes, with a secret Sampler, and charge the
//     privacy ledger with the TrainResult's Steps (and check its Samples
//     with dp.CheckSampling): they are what ran, also after a stop.
//  5. For hyperparameter search, Tuner.Search takes the train and validation
//     splits only, never the test split, so nothing it chooses can have seen
//     the test split; evaluate the test split once on TuneResult.Model.
package learning
