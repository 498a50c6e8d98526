package synth

import (
	"image"
	"image/color"
	"math"
)

// Contact returns a contact sheet of the samples: a grid of tiles, each
// windowed to its own 1st..99th percentile and shown bone-bright, with an orange bar under the
// tiles that carry a lesion. It is for eyeballing data, not for training.
func Contact(samples []Sample) image.Image {
	const tile, gap, bar = 96, 4, 4
	cols := max(1, int(math.Ceil(math.Sqrt(float64(len(samples))))))
	rows := max(1, (len(samples)+cols-1)/cols)
	img := image.NewRGBA(image.Rect(0, 0, cols*(tile+gap)+gap, rows*(tile+gap+bar)+gap))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for k, s := range samples {
		if s.Rows <= 0 || s.Cols <= 0 || len(s.Pixels) != s.Rows*s.Cols {
			continue
		}
		x0 := gap + (k%cols)*(tile+gap)
		y0 := gap + (k/cols)*(tile+gap+bar)
		c, w := voiWindow(s.Pixels)
		lo, hi := c-w/2, c+w/2
		for y := range tile {
			for x := range tile {
				p := float64(s.Pixels[(y*s.Rows/tile)*s.Cols+x*s.Cols/tile])
				g := uint8(math.Round(255 * math.Min(1, math.Max(0, (p-lo)/(hi-lo)))))
				if s.Monochrome1 {
					g = 255 - g
				}
				img.SetRGBA(x0+x, y0+y, color.RGBA{g, g, g, 255})
			}
		}
		if s.Label == 1 {
			for y := range bar {
				for x := range tile {
					img.SetRGBA(x0+x, y0+tile+y, color.RGBA{230, 120, 0, 255})
				}
			}
		}
	}
	return img
}
