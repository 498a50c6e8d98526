// Package jpeg2000 decodes JPEG 2000 Part 1 (ISO/IEC 15444-1) and High-Throughput
// JPEG 2000 (Part 15, ISO/IEC 15444-15 | ITU-T T.814, HTJ2K) codestreams, and the
// JP2 and JPH file wrappers, into integer samples. It is pure computation: no I/O and no
// imports of the rest of Concord. The code-blocks of a tile, then its
// components' inverse wavelet transforms, are decoded by a bounded pool of
// goroutines ([Options.Workers], GOMAXPROCS by default), each with its own
// scratch state and writing its own part of the result: the samples do not
// depend on the number of workers, and the first error (in decoding order) is
// the one returned. Large wavelet levels share their rows and column blocks
// among the same number of goroutines.
//
// Speed: tier 1 keeps a 16-bit flag word per coefficient holding its own state
// and its neighbours' significance and signs, updated when a coefficient
// becomes significant, so that every context is one table look-up. The four
// flag words of a stripe column are packed in one 64-bit word (OpenJPEG's
// layout, with 16 bits a sample), so that a pass tests a whole stripe column
// (nothing to code, all significant, run mode) with one load and a mask, and
// skips it; the refinement and cleanup passes go straight to the rows they code
// through the trailing zeros of the masked word. The MQ decoder's states are one table of (state, MPS) pairs; its
// usual decision is written out in the passes with the A and C registers in
// local variables, and the rarer paths take and return them as arguments.
// Code-blocks are the unit of parallel work (above); each goroutine reuses its
// decoder's flag and coefficient arrays from block to block, and tile-component
// arrays come from a pool. The vertical wavelet pass lifts blocks of
// neighbouring columns together. [Options.ReduceLevels] skips the code-blocks
// and wavelet levels of the resolutions it discards; [Levels] says how many a
// stream allows.
//
// Supported: SIZ with any number of components (up to [MaxComponents]), signed
// or unsigned samples of 1 to 16 bits, subsampled components, image and tile
// offsets; one or many tiles and tile-parts; COD/COC, QCD/QCC (no quantisation,
// scalar derived and scalar expounded) in the main and tile-part headers; the
// five progression orders and POC progression changes; quality layers; user
// precincts; SOP and EPH markers; packed packet headers (PPM, PPT); all
// code-block styles (selective arithmetic-coding bypass, context reset,
// termination on each pass, vertically causal context, predictable
// termination, segmentation symbols); the 5/3 reversible and 9/7 irreversible
// wavelets; RCT and ICT; DC level shift; ROI by the maximum-shift method (RGN);
// reduced-resolution decoding ([Options.ReduceLevels]). TLM, PLM, PLT, CRG and
// COM are read past.
//
// HTJ2K: the CAP marker (Part 15 capabilities; any other Part is refused), HT
// code-blocks (code-block style bit 0x40) with their cleanup pass (MEL, VLC
// with the standard's codeword tables, U-VLC, MagSgn) and the SigProp and
// MagRef passes, the HT segment lengths of tier 2 (Lcup, Lref; placeholder
// passes of a first contribution become missing bit-planes), vertically causal
// SigProp. The HT decoder writes the same coefficient form as tier 1, so
// everything after tier 1 is shared with Part 1. CPF is read past.
//
// Refused with an error naming what is missing ([ErrUnsupported]): Part 2
// extensions (arbitrary wavelets, multi-component transforms), precisions
// above 16 bits, ROI styles other than maximum shift, JP2 files with a palette
// (pclr, cmap), and in HTJ2K: mixed code-blocks (some HT, some Part 1), more
// than one HT set in a code-block (passes beyond cleanup, SigProp and MagRef
// that only a decoder keeping several sets could use), ROI with HT
// code-blocks, and HT code-blocks of more than 29 magnitude bit-planes. A JP2 file's colour specification is not applied: the result is the
// codestream's components.
//
// Results equal OpenJPEG 2.5's (opj_decompress, and pydicom through Pillow)
// sample for sample on every stream of the Part 4 conformance set, the other
// Part 1 streams and the HTJ2K streams in the project's shared data that are
// not refused, HTJ2K streams made by OpenJPH's encoder across its options and
// Kakadu's with refinement passes (testdata/htj2k), the 9/7 ones included: the irreversible path uses OpenJPEG's float32
// constants and order of operations. The tests still allow a difference of one
// for 9/7 streams, the bound Part 4 sets, so that another OpenJPEG build cannot
// fail them. An absent tile leaves zeros, as in OpenJPEG; a stream cut inside a
// tile is an error.
//
// Memory is bounded before it is allocated: the sample count of the image is
// checked against [Options.MaxSamples], the number of tiles, components,
// layers and packets against fixed limits, and every length read from the
// stream against the bytes present. A truncated or inconsistent stream gives
// an error wrapping [ErrMalformed] or [ErrTruncated], never a panic.
package jpeg2000
