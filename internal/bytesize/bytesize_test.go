package bytesize

import "testing"

func TestParseAndFormat(t *testing.T) {
	for in, want := range map[string]int64{"20GiB": 20 << 30, "500MB": 500e6, " 1.5 GiB": 3 << 29, "4096": 4096, "2KiB": 2048} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1GiB", "lots", "1e30TiB", "GiB"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	for n, want := range map[int64]string{512: "512 B", 3 << 29: "1.5 GiB", 20 << 20: "20.0 MiB", 2 << 40: "2.0 TiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q; want %q", n, got, want)
		}
	}
}
