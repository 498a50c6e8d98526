package report

import (
	"bytes"
	"fmt"

	"github.com/concord-fl/concord/plot"
)

// epsilonChart draws each site's cumulative epsilon over the rounds, from
// its spending before the job (round 0), with a dashed budget line per site.
func epsilonChart(r *Report, width, height int) ([]byte, error) {
	dp := r.Privacy
	c := plot.Chart{
		Title:    fmt.Sprintf("Cumulative epsilon per site (%s level, delta %s)", dp.Level, flt(dp.Delta)),
		XLabel:   "Round",
		YLabel:   "Cumulative epsilon",
		YMin:     plot.F(0),
		Width:    width,
		Height:   height,
		Footnote: fmt.Sprintf("concordctl audit export --job %s --format csv", r.Subject.JobID),
	}
	for _, b := range dp.Sites {
		s := plot.Series{Name: b.Site, X: []float64{0}, Y: []float64{b.SpentBefore}}
		for _, rs := range b.Rounds {
			s.X = append(s.X, float64(rs.Round))
			s.Y = append(s.Y, rs.Cumulative)
		}
		c.Series = append(c.Series, s)
		c.Refs = append(c.Refs, plot.Ref{Label: fmt.Sprintf("budget %s = %s", b.Site, flt(b.Budget)), Y: b.Budget})
	}
	var buf bytes.Buffer
	if err := c.PNG(&buf); err != nil {
		return nil, fmt.Errorf("epsilon chart: %w", err)
	}
	return buf.Bytes(), nil
}
