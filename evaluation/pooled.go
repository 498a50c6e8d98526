package evaluation

import (
	"fmt"
	"math"
	"slices"
)

// Pooled subgroup counts. A validation site of a secure job encrypts its
// confusion counts per subgroup in a fixed schema (PooledCells, four
// counts each), so that the coordinator can add every site's vector under
// encryption and decrypt only the sum. The schema covers the closed
// vocabularies (sex, age band); manufacturer and model are open
// vocabularies that no fixed vector can hold, so they are not pooled.

// PooledCell names one subgroup of the pooled schema; Value "" is unknown
// (missing, or a value outside the vocabulary).
type PooledCell struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// PooledCells is the schema of a pooled count vector, in order. Changing
// it changes the wire format: sites and coordinator must agree.
var PooledCells = []PooledCell{
	{"sex", "F"}, {"sex", "M"}, {"sex", "O"}, {"sex", ""},
	{"age", "0-17"}, {"age", "18-39"}, {"age", "40-64"}, {"age", "65+"}, {"age", ""},
}

// PooledCounts names the four counts of each cell, in vector order.
var PooledCounts = []string{"tp", "fp", "tn", "fn"}

// PooledLen is the length of a pooled count vector.
func PooledLen() int { return len(PooledCells) * len(PooledCounts) }

// PooledNote says what pooling leaves out.
const PooledNote = "pooled over validation sites for the closed vocabularies sex and age band; manufacturer and model are open vocabularies and are reported per site only"

// SubgroupCounts returns a site's unsuppressed confusion counts (at
// threshold) in the pooled schema. They must only leave the site
// encrypted: small cells are not suppressed here, because only their sum
// over sites is ever decrypted and suppression is applied to that sum.
func SubgroupCounts(scores []float64, labels []int, groups map[string][]string, threshold float64) ([]float32, error) {
	if _, err := checkBinary(scores, labels); err != nil {
		return nil, fmt.Errorf("subgroup counts: %w", err)
	}
	if err := checkGroups(len(scores), groups); err != nil {
		return nil, err
	}
	out := make([]float32, PooledLen())
	for i, s := range scores {
		c := 0 // tp
		switch {
		case labels[i] == 1 && s < threshold:
			c = 3 // fn
		case labels[i] != 1 && s >= threshold:
			c = 1 // fp
		case labels[i] != 1:
			c = 2 // tn
		}
		for _, field := range []string{"sex", "age"} {
			v := ""
			if vals, ok := groups[field]; ok {
				v = vals[i]
			}
			out[cellIndex(field, v)*len(PooledCounts)+c]++
		}
	}
	return out, nil
}

// cellIndex is the schema index of field=value; an unknown or
// out-of-vocabulary value is the field's unknown cell.
func cellIndex(field, value string) int {
	unknown := -1
	for i, c := range PooledCells {
		if c.Field != field {
			continue
		}
		if c.Value == value && value != "" {
			return i
		}
		if c.Value == "" {
			unknown = i
		}
	}
	return unknown
}

// PooledSubgroup is one cell of a decrypted pooled vector.
type PooledSubgroup struct {
	PooledCell
	Examples   int                 `json:"examples,omitempty"` // 0 when suppressed
	Suppressed bool                `json:"suppressed,omitempty"`
	Confusion  map[string]int      `json:"confusion,omitempty"`
	Metrics    map[string]Estimate `json:"metrics,omitempty"` // sensitivity, specificity (Wilson)
}

// PooledReport turns a decrypted pooled sum into subgroup figures. sum
// holds the decrypted values (integers up to decryption noise, which is
// far below 1/2 and is rounded away). Cells with no example are left out;
// cells with fewer than minSize examples are suppressed, and when a field
// has exactly one such cell its smallest reported cell is suppressed too
// (as AssessBinary does), so that the total cannot give it away.
func PooledReport(sum []float64, minSize int) ([]PooledSubgroup, error) {
	if len(sum) != PooledLen() {
		return nil, fmt.Errorf("pooled counts: %d values, the schema has %d", len(sum), PooledLen())
	}
	if minSize < 1 {
		minSize = DefaultMinSubgroup
	}
	var out []PooledSubgroup
	for i, cell := range PooledCells {
		conf := map[string]int{}
		n := 0
		for k, name := range PooledCounts {
			v := math.Round(sum[i*len(PooledCounts)+k])
			if v < 0 || math.IsNaN(v) || v > 1<<40 {
				return nil, fmt.Errorf("pooled counts: %s of %s=%q decrypts to %v: the sum is corrupt", name, cell.Field, cell.Value, sum[i*len(PooledCounts)+k])
			}
			conf[name] = int(v)
			n += int(v)
		}
		if n == 0 {
			continue
		}
		g := PooledSubgroup{PooledCell: cell, Examples: n, Confusion: conf, Metrics: map[string]Estimate{}}
		if p := conf["tp"] + conf["fn"]; p > 0 {
			g.Metrics["sensitivity"] = wilson(float64(conf["tp"]), float64(p))
		}
		if q := conf["tn"] + conf["fp"]; q > 0 {
			g.Metrics["specificity"] = wilson(float64(conf["tn"]), float64(q))
		}
		out = append(out, g)
	}
	for _, field := range []string{"sex", "age"} {
		small, smallest := 0, -1
		for i, g := range out {
			switch {
			case g.Field != field:
			case g.Examples < minSize:
				small++
			case smallest < 0 || g.Examples < out[smallest].Examples:
				smallest = i
			}
		}
		for i := range out {
			if out[i].Field == field && (out[i].Examples < minSize || small == 1 && i == smallest) {
				out[i] = PooledSubgroup{PooledCell: out[i].PooledCell, Suppressed: true}
			}
		}
	}
	return slices.Clip(out), nil
}
