package learning

import (
	"slices"
	"testing"
)

// TestSubsetCarriesGroups: a subset keeps each example's subgroup values
// with it, so validation on a split reports the right subgroups.
func TestSubsetCarriesGroups(t *testing.T) {
	d := Dataset{N: 4, C: 1, H: 1, W: 1, X: []float32{0, 1, 2, 3}, Y: []int{0, 1, 0, 1},
		Groups: map[string][]string{"sex": {"F", "M", "", "F"}, "age": {"18-39", "65+", "40-64", ""}}}
	s := d.Subset([]int{3, 1})
	if !slices.Equal(s.X, []float32{3, 1}) || !slices.Equal(s.Y, []int{1, 1}) ||
		!slices.Equal(s.Groups["sex"], []string{"F", "M"}) || !slices.Equal(s.Groups["age"], []string{"", "65+"}) {
		t.Fatalf("subset %+v", s)
	}
	s.Groups["sex"][0] = "O"
	if d.Groups["sex"][3] != "F" {
		t.Fatal("the subset shares its groups with the original")
	}
	if (Dataset{N: 1, C: 1, H: 1, W: 1, X: []float32{0}}).Subset([]int{0}).Groups != nil {
		t.Fatal("a dataset without groups gained some")
	}
}

// TestSubsetCarriesMasks: a segmentation subset keeps each image's mask.
func TestSubsetCarriesMasks(t *testing.T) {
	d := Dataset{N: 3, C: 1, H: 1, W: 2, X: []float32{0, 1, 2, 3, 4, 5}, Masks: []float32{0, 1, 1, 0, 1, 1}}
	s := d.Subset([]int{2, 0})
	if !slices.Equal(s.X, []float32{4, 5, 0, 1}) || !slices.Equal(s.Masks, []float32{1, 1, 0, 1}) {
		t.Fatalf("subset %+v", s)
	}
}
