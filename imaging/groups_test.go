package imaging

import (
	"maps"
	"strings"
	"testing"
)

func TestAgeBand(t *testing.T) {
	for in, want := range map[string]string{
		"000D": "0-17", "017Y": "0-17", "018Y": "18-39", "039Y": "18-39", "040Y": "40-64", "064Y": "40-64",
		"065Y": "65+", "101Y": "65+", "216M": "18-39", "215M": "0-17", "052W": "0-17", "7300D": "",
		"45Y": "", "045y": "", "-01Y": "", "": "", "ABCY": "", " 45Y": "",
	} {
		if got := AgeBand(in); got != want {
			t.Errorf("AgeBand(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGroups: the coarse fields come back from a written file, in their
// safe forms; absent or odd values are unknown; identifiers never appear.
func TestGroups(t *testing.T) {
	for _, c := range []struct {
		name                   string
		sex, age, maker, model string
		want                   map[string]string
	}{
		{"all set", "F", "070Y", "Acme  Imaging\tCo", "SYNTH-DR 200",
			map[string]string{GroupSex: "F", GroupAge: "65+", GroupManufacturer: "Acme Imaging Co", GroupModel: "SYNTH-DR 200"}},
		{"none set", "", "", "", "",
			map[string]string{GroupSex: "", GroupAge: "", GroupManufacturer: "", GroupModel: ""}},
		{"odd sex, long model", "X", "12", "A", strings.Repeat("m", 70),
			map[string]string{GroupSex: "", GroupAge: "", GroupManufacturer: "A", GroupModel: strings.Repeat("m", maxGroupValue)}},
	} {
		f := fakePatient
		f.Rows, f.Columns, f.Pixels = 2, 2, []uint16{1, 2, 3, 4}
		f.PatientSex, f.PatientAge, f.Manufacturer, f.ManufacturerModelName = c.sex, c.age, c.maker, c.model
		b, err := EncodeSynthetic(f)
		if err != nil {
			t.Fatal(err)
		}
		im, err := Read(b, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		got := im.Groups()
		if !maps.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		for _, v := range got {
			for _, id := range identifierStrings(f) {
				if v != "" && strings.Contains(id, v) && len(v) > 2 {
					t.Errorf("%s: group value %q is part of identifier %q", c.name, v, id)
				}
			}
		}
	}
	if g := (*Image)(nil).Groups(); len(g) != len(GroupFields) {
		t.Errorf("nil image: %v", g)
	}
}
