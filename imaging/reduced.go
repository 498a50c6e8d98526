package imaging

import (
	"errors"
	"fmt"

	"github.com/concord-fl/concord/imaging/jpeg2000"
)

// FrameReduced is Frame at the smallest resolution, no smaller than minW x minH,
// that the frame's coding gives without decoding the rest: a JPEG 2000 frame
// leaves out the wavelet levels it does not need (each one halves both sides,
// rounding up), which skips most of the decoding work when a large image goes to
// a small model input. Other frames, and frames already small enough, come at
// full size. It returns the values and their width and height.
func (im *Image) FrameReduced(i, minW, minH int) (out []float32, w, h int, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: pixel conversion fault in frame %d: %v", ErrMalformed, i, r)
		}
	}()
	if err := im.stale(); err != nil {
		return nil, 0, 0, err
	}
	r := im.reduction(i, minW, minH)
	if r == 0 {
		out, err = im.Frame(i)
		return out, im.Columns, im.Rows, err
	}
	src := im.frames[i]
	if err := im.checkJ2KHeader(src); err != nil {
		return nil, 0, 0, err
	}
	img, err := jpeg2000.Decode(src, jpeg2000.Options{MaxSamples: int64(im.Rows) * int64(im.Columns) * int64(im.SamplesPerPixel), ReduceLevels: r})
	if errors.Is(err, jpeg2000.ErrUnsupported) {
		// A tile-part header may code fewer levels than the main header: decode it all.
		out, err = im.Frame(i)
		return out, im.Columns, im.Rows, err
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("jpeg 2000: %w", j2kCategory(err))
	}
	// The components had the image's size (checkJ2KHeader), so they share the reduced one.
	sub := *im
	sub.Columns, sub.Rows = img.Components[0].Width, img.Components[0].Height
	return sub.pixels(nil, sub.j2kFrame(img)), sub.Columns, sub.Rows, nil
}

// reduction is how many wavelet levels frame i can leave out and still be at
// least minW x minH: 0 for anything but a decodable JPEG 2000 frame.
func (im *Image) reduction(i, minW, minH int) int {
	if im.TransferSyntaxUID != TSJ2KLossless && im.TransferSyntaxUID != TSJ2K || !im.pixel.Undefined ||
		im.File.headerOnly || i < 0 || i >= len(im.frames) {
		return 0
	}
	levels, err := jpeg2000.Levels(im.frames[i])
	if err != nil {
		return 0 // Frame reports what is wrong
	}
	r := 0
	// Rounding down: with an odd image offset a level may come out one smaller
	// than the rounded-up half.
	for r < levels && im.Columns>>uint(r+1) >= minW && im.Rows>>uint(r+1) >= minH {
		r++
	}
	return r
}
