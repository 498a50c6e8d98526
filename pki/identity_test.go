package pki

import (
	"errors"
	"testing"
)

func TestParseIdentityURI(t *testing.T) {
	good := map[string]Identity{
		"concord://site/st-marys":      {Role: RoleSite, Name: "st-marys"},
		"concord://admin/a":            {Role: RoleAdmin, Name: "a"},
		"concord://auditor/x-1":        {Role: RoleAuditor, Name: "x-1"},
		"concord://coordinator/coord0": {Role: RoleCoordinator, Name: "coord0"},
	}
	for s, want := range good {
		got, err := ParseIdentityURI(s)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v", s, got, err)
		}
		if got.URI().String() != s {
			t.Errorf("%s: URI() = %s", s, got.URI())
		}
	}
	bad := []string{
		"", "site/st-marys", "https://site/st-marys", "concord://root/x", "concord://site/",
		"concord://site/St-Marys", "concord://site/a/b", "concord://site:1/a", "concord://u@site/a",
		"concord://site/a?x=1", "concord://site/a#f", "concord:site/a", "concord://site/%61", "concord://SITE/a",
	}
	for _, s := range bad {
		if id, err := ParseIdentityURI(s); !errors.Is(err, ErrInvalidIdentity) {
			t.Errorf("%q: %+v, %v; want ErrInvalidIdentity", s, id, err)
		}
	}
}

func FuzzParseIdentityURI(f *testing.F) {
	f.Add("concord://site/st-marys")
	f.Add("concord://admin/a?b")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentityURI(s)
		if err != nil {
			return
		}
		// Whatever is accepted is canonical and round-trips.
		if again, err := ParseIdentityURI(id.URI().String()); err != nil || again != id {
			t.Fatalf("%q parsed to %+v, which does not round-trip: %+v %v", s, id, again, err)
		}
		if !id.Role.Valid() || ValidateName(id.Name) != nil {
			t.Fatalf("%q accepted as %+v", s, id)
		}
	})
}
