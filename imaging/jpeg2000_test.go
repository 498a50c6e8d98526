package imaging

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// TestJ2KShortFrame: a JPEG 2000 frame cut short (as in pydicom's
// emri_small_jpeg_2k_lossless_too_short.dcm) gives a categorised error, not pixels.
func TestJ2KShortFrame(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	for _, name := range []string{"MR_small_jp2klossless.dcm", "examples_jpeg2k.dcm", "JPEG2000.dcm"} {
		im := mustRead(t, filepath.Join(dir, name))
		if err := im.Decodable(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		full := im.frames[0]
		if _, err := im.decodeJ2K(full); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, n := range []int{len(full) / 3, len(full) - 10, 100} {
			_, err := im.decodeJ2K(full[:n])
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
				t.Errorf("%s cut to %d of %d bytes: %v", name, n, len(full), err)
			}
			if Reason(err) != "truncated" && Reason(err) != "malformed" {
				t.Errorf("%s: reason %q", name, Reason(err))
			}
		}
	}
}
