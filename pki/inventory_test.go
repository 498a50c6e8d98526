package pki

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseInventoryRejects(t *testing.T) {
	tests := map[string]string{
		"not JSON":       `{`,
		"no version":     `{"certificates":[]}`,
		"future version": `{"version":2,"certificates":[]}`,
		"duplicate":      `{"version":1,"certificates":[{"serial":"1","role":"site","name":"a"},{"serial":"1","role":"site","name":"b"}]}`,
		"no serial":      `{"version":1,"certificates":[{"role":"site","name":"a"}]}`,
		"bad role":       `{"version":1,"certificates":[{"serial":"1","role":"root","name":"a"}]}`,
		"bad name":       `{"version":1,"certificates":[{"serial":"1","role":"site","name":"A B"}]}`,
	}
	for name, data := range tests {
		if _, err := ParseInventory([]byte(data)); !errors.Is(err, ErrInventory) {
			t.Errorf("%s: %v, want ErrInventory", name, err)
		}
	}
	inv, err := ParseInventory([]byte(`{"version":1,"certificates":[{"serial":"ab","role":"site","name":"a","not_after":"2030-01-01T00:00:00Z"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := inv.Lookup("ab"); err != nil || e.Name != "a" {
		t.Errorf("Lookup: %+v, %v", e, err)
	}
	if _, err := inv.Lookup("cd"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup unknown: %v", err)
	}
	if n := len(inv.Active(RoleSite, "a", time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC))); n != 1 {
		t.Errorf("active before expiry: %d", n)
	}
	if n := len(inv.Active(RoleSite, "a", time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))); n != 0 {
		t.Errorf("active after expiry: %d", n)
	}
}

func TestInventoryWatcher(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(dir, "test"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, InventoryFile)
	w, err := WatchInventory(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	kit, err := Issue(dir, IssueRequest{Role: RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := w.Lookup(kit.Serial); err != nil || e.Revoked {
		t.Fatalf("after issue: %+v, %v", e, err)
	}
	if err := Revoke(dir, RoleSite, "st-marys"); err != nil {
		t.Fatal(err)
	}
	if e, err := w.Lookup(kit.Serial); err != nil || !e.Revoked {
		t.Fatalf("after revoke: %+v, %v", e, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Lookup(kit.Serial); !errors.Is(err, ErrInventory) {
		t.Fatalf("inventory removed: %v, want ErrInventory (fail closed)", err)
	}
	if err := (&Inventory{}).save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Lookup(kit.Serial); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inventory replaced by an empty one: %v, want ErrNotFound", err)
	}
	if _, err := WatchInventory(filepath.Join(dir, "missing.json"), nil); !errors.Is(err, ErrInventory) {
		t.Errorf("watching a missing file: %v", err)
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add([]byte(`{"version":1,"certificates":[{"serial":"ab","role":"site","name":"a"}]}`))
	f.Add([]byte(`{"version":1,"certificates":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		inv, err := ParseInventory(data)
		if err != nil {
			return
		}
		for _, e := range inv.Certificates {
			got, err := inv.Lookup(e.Serial)
			if err != nil || got.Serial != e.Serial || !got.Role.Valid() {
				t.Fatalf("accepted inventory has a bad entry %+v: %v", e, err)
			}
		}
	})
}

func TestInventoryWatcherConcurrentRevocation(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(dir, "test"); err != nil {
		t.Fatal(err)
	}
	kit, err := Issue(dir, IssueRequest{Role: RoleSite, Name: "st-marys"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := WatchInventory(filepath.Join(dir, InventoryFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 4)
	for range 4 {
		go func() {
			for range 200 {
				if _, err := w.Lookup(kit.Serial); err != nil {
					done <- err // atomic writes: a reader never sees a half-written file
					return
				}
			}
			done <- nil
		}()
	}
	for i := range 5 {
		if _, err := Issue(dir, IssueRequest{Role: RoleSite, Name: "s" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := Revoke(dir, RoleSite, "st-marys"); err != nil {
		t.Fatal(err)
	}
	if e, err := w.Lookup(kit.Serial); err != nil || !e.Revoked {
		t.Fatalf("after revoke: %+v, %v", e, err)
	}
}
