package report

import (
	"slices"
	"strings"
	"testing"
)

func TestHIPAATableNamesConcordsSafeguards(t *testing.T) {
	rows := HIPAATable(Sample())
	var sections []string
	for _, c := range rows {
		sections = append(sections, c.Section)
		if c.Standard == "" || c.Concord == "" || c.Hospital == "" {
			t.Errorf("%s has an empty column: %+v", c.Section, c)
		}
	}
	want := []string{"§164.312(a)", "§164.312(b)", "§164.312(c)", "§164.312(d)", "§164.312(e)"}
	if !slices.Equal(sections, want) {
		t.Fatalf("sections %q, want %q", sections, want)
	}
	for i, words := range [][]string{
		{"mutual TLS", "role", "revoked", "never leave"},
		{"hash-chained", "Merkle", "witnesses", "checkpoint"},
		{"Ed25519", "SHA-256"},
		{"X.509", "serial and expiry"},
		{"TLS 1.3", "homomorphic", "2 of the 3 sites", "128-bit", "de-identified at the site"},
	} {
		for _, w := range words {
			if !strings.Contains(rows[i].Concord, w) {
				t.Errorf("%s does not mention %q: %s", rows[i].Section, w, rows[i].Concord)
			}
		}
	}
}

func TestGDPRRecordMarksWhatOnlyHospitalsKnow(t *testing.T) {
	r := Sample()
	// The longer profile first: it must not hide the shorter one.
	r.Sites[0], r.Sites[1] = r.Sites[1], r.Sites[0]
	g := GDPRRecordFor(r)
	if len(g.Controllers) != len(r.Sites) {
		t.Fatalf("%d controllers for %d sites", len(g.Controllers), len(r.Sites))
	}
	for _, c := range g.Controllers {
		if !IsPlaceholder(c.DPOContact) || !IsPlaceholder(c.Contact) {
			t.Errorf("%s: contact and DPO must be left to the hospital: %+v", c.Name, c)
		}
	}
	if !IsPlaceholder(g.ThirdCountryTransfers) || !IsPlaceholder(g.ErasureTimeLimits) {
		t.Error("(e) and (f) must be left to the hospitals")
	}
	if !strings.Contains(g.PersonalData[0], r.Sites[0].Deidentification+"; "+r.Sites[1].Deidentification) {
		t.Errorf("personal data does not name both de-identification profiles: %q", g.PersonalData[0])
	}
	if !slices.Contains(g.Purposes, r.Purpose) {
		t.Errorf("purposes %q lack the report's purpose", g.Purposes)
	}
	r.GDPR = g
	ph := Placeholders(r)
	if len(ph) != 2*len(r.Sites)+5 {
		t.Errorf("%d placeholders listed, want %d: %q", len(ph), 2*len(r.Sites)+5, ph)
	}
	if IsPlaceholder("St Mary's") {
		t.Error("an ordinary answer taken for a placeholder")
	}
}
