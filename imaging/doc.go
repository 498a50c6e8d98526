// Package imaging owns everything between a hospital's DICOM files and the float32
// tensors a model trains on, inside the hospital: reading DICOM, decoding pixel data,
// standardising and enhancing images, de-identifying headers, labelled datasets, and
// scanning folders.
//
// Reading: [ReadFile] and [Read] parse the data-element stream with this package's own
// parser (explicit and implicit VR, little and big endian, deflate, files with and
// without the Part 10 header, undefined-length sequences, encapsulated pixel data).
// Native pixel data at every bit depth, RLE lossless, JPEG baseline and extended (8 and
// 12 bit, with libjpeg's integer IDCT and upsampling, so arrays equal pydicom's and
// dcmtk's), JPEG lossless (process 14), JPEG-LS (lossless and near-lossless) and JPEG
// 2000 (lossless and lossy, Part 1, by the subpackage jpeg2000; YBR_RCT and YBR_ICT
// frames come out as RGB) are decoded by Concord's own code. The video syntaxes are
// rejected with an [*UnsupportedSyntaxError] that names the transfer syntax. Declared sizes are
// checked against the bytes present before anything proportional to them is allocated,
// and panics are recovered at the boundary, so no input crashes or stalls the agent.
//
// Reading a folder: a [Decoder] keeps the file buffer and the frame buffer from one
// file to the next, so that a folder of large images allocates, zeroes and faults in
// nothing per image; native pixel data is converted where it lies in the file buffer.
// The price is aliasing: its images are valid until its next file, and say so
// ([ErrStale]) rather than decode another file's bytes. 16-bit frames of more than
// 16 samples per possible value are converted through a table of every value's
// result (identical to the formula, a load per sample).
//
// Rarer pixel formats decode as pydicom decodes them: Float and Double Float Pixel
// Data (parametric maps; [Image.Dtype] is "<f4" or "<f8"), palette colour images with
// segmented lookup tables (discrete, linear and indirect segments), 1-bit RLE (one
// byte per pixel in the segment, or packed bits), and deflated data sets followed by
// null padding.
//
// The caller's duties, in order:
//
//  1. Treat every UID and header string on an [Image] as a patient identifier. Pass
//     what you record through a [Deidentifier] ([Deidentifier.Record],
//     [Deidentifier.UID]); log only [Reason] strings and counts.
//  2. Exclude images with BurnedInAnnotation set unless the site opted in.
//  3. Build one [Pipeline] from the job spec, call [Pipeline.Validate] once, and record
//     [Pipeline.Hash] in the model's lineage; [Pipeline.Apply] is deterministic.
//  4. Keep the site secret given to [NewDeidentifier] inside the hospital: it makes UID
//     remapping consistent across the site and irreversible elsewhere.
//
// The package imports no networking and no cryptography beyond HMAC; it knows nothing
// of gRPC or homomorphic encryption.
package imaging
