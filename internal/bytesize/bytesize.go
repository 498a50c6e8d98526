// Package bytesize reads and writes sizes in bytes the way our config files
// and messages spell them: 20GiB, 500MB, 1.5 GiB, or a plain count.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var units = []struct {
	suffix string
	n      int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}, {"", 1}}

// Parse reads a positive size: a number with an optional unit (binary KiB,
// MiB, GiB, TiB or decimal KB, MB, GB, TB), at most 2^62 bytes.
func Parse(s string) (int64, error) {
	s = strings.TrimSpace(s)
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 || v*float64(u.n) > 1<<62 {
				break
			}
			return int64(v * float64(u.n)), nil
		}
	}
	return 0, fmt.Errorf("%q is not a size (write e.g. 20GiB or 500MB)", s)
}

// Format writes n in the largest binary unit that keeps it at least one,
// with one decimal: 1.5 GiB, 20.0 MiB, 512 B.
func Format(n int64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Size is a size in a YAML file, written as Parse reads it.
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := Parse(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = Size(v)
	return nil
}
