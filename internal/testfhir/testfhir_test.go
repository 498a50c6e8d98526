package testfhir

import (
	"strings"
	"testing"
)

// TestCheckFindsErrors keeps the validator honest: a resource missing a
// required element and one with an unknown element are reported, a correct
// one is not.
func TestCheckFindsErrors(t *testing.T) {
	got := Check(t,
		[]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`),
		[]byte(`{"resourceType":"Observation","status":"final"}`),
		[]byte(`{"resourceType":"Device","colour":"blue"}`),
	)
	if len(got[0]) != 0 {
		t.Errorf("valid Observation: %v", got[0])
	}
	for i, want := range map[int]string{1: "Observation.code", 2: "Device.colour"} {
		found := false
		for _, is := range got[i] {
			found = found || (is.Severity == "error" && strings.Contains(is.Expression, want))
		}
		if !found {
			t.Errorf("resource %d: issues %v, want an error at %s", i, got[i], want)
		}
	}
}
