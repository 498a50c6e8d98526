// Package promtext parses the Prometheus text exposition format as the
// daemons write it (one sample a line: name{label="value",...} number),
// strictly, so tests catch a malformed line that a lenient scraper would
// drop without a word. It is for tests and checks, not a full parser: no
// timestamps, no escapes beyond \" and \\ in label values.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Sample is one line.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

var (
	line  = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	label = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)`)
	meta  = regexp.MustCompile(`^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$`)
)

// Parse reads every sample; a line that is neither a sample, a HELP or
// TYPE comment nor empty is an error naming its number.
func Parse(r io.Reader) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, "#") {
			if !meta.MatchString(text) {
				return nil, fmt.Errorf("line %d: malformed comment %q", n, text)
			}
			continue
		}
		m := line.FindStringSubmatch(text)
		if m == nil {
			return nil, fmt.Errorf("line %d: not a sample: %q", n, text)
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value %q: %w", n, m[4], err)
		}
		s := Sample{Name: m[1], Labels: map[string]string{}, Value: v}
		for rest := m[3]; rest != ""; {
			l := label.FindStringSubmatch(rest)
			if l == nil {
				return nil, fmt.Errorf("line %d: malformed labels %q", n, m[3])
			}
			s.Labels[l[1]] = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(l[2])
			rest = rest[len(l[0]):]
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// Value returns the value of the sample with name and every given label
// (pairs: name, value), and whether there is one.
func Value(samples []Sample, name string, labels ...string) (float64, bool) {
next:
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.Labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.Value, true
	}
	return 0, false
}
