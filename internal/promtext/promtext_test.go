package promtext

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	ok := "# HELP a_total Things.\n# TYPE a_total counter\na_total{kind=\"x\",k2=\"q\\\"\"} 3\nb 1.5e-3\n\nc{} 0\n"
	s, err := Parse(strings.NewReader(ok))
	if err != nil || len(s) != 3 {
		t.Fatalf("%v %v", s, err)
	}
	if v, found := Value(s, "a_total", "kind", "x", "k2", `q"`); !found || v != 3 {
		t.Errorf("a_total: %v %v", v, found)
	}
	for _, bad := range []string{"a b c\n", "a{kind=x} 1\n", "a 1 2 3\n", "# nonsense\n", "a{k=\"v\"x} 1\n", "9a 1\n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
