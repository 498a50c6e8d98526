package plot_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/concord-fl/concord/plot"
)

// A learning curve with a fixed AUC axis, written where a simulator run
// keeps its results.
func ExampleChart_PNG() {
	dir, err := os.MkdirTemp("", "concord-plot")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	c := plot.Chart{
		Title:  "Validation AUC per round",
		XLabel: "Round", YLabel: "AUC",
		YMin: plot.F(0.5), YMax: plot.F(1),
		Series: []plot.Series{
			{Name: "global model", X: []float64{1, 2, 3, 4}, Y: []float64{0.62, 0.74, 0.83, 0.88}},
		},
		Footnote: "concord-sim --seed 1 --rounds 4",
	}
	f, err := os.Create(filepath.Join(dir, "auc.png"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	if err := c.PNG(f); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("wrote auc.png")
	// Output: wrote auc.png
}

// Per-site metrics as grouped bars; a missing value shows as "n/a".
func ExampleBars() {
	b := plot.Bars("Per-site metrics, model v3", "Score",
		[]string{"St Brigid's General", "Elm Park Clinic"},
		plot.BarSeries{Name: "AUC", Values: []float64{0.91, 0.87}},
		plot.BarSeries{Name: "Sensitivity", Values: []float64{0.84, 0.80}},
	)
	err := b.PNG(io.Discard)
	fmt.Println(err)
	// Output: <nil>
}
