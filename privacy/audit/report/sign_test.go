package report

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// mutations walks every leaf of v (strings, numbers, booleans, times) and
// every slice, and returns, for each, its path and a function that changes
// it in place and one that undoes the change.
func mutations(path string, v reflect.Value) []mutation {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return mutations(path, v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			old := v.Interface().(time.Time)
			return []mutation{{path, func() { v.Set(reflect.ValueOf(old.Add(time.Second))) }, func() { v.Set(reflect.ValueOf(old)) }}}
		}
		var out []mutation
		for i := 0; i < v.NumField(); i++ {
			out = append(out, mutations(path+"."+v.Type().Field(i).Name, v.Field(i))...)
		}
		return out
	case reflect.Slice:
		var out []mutation
		if v.Len() > 0 {
			old := reflect.ValueOf(v.Interface())
			out = append(out, mutation{path + "[drop last]", func() { v.Set(old.Slice(0, old.Len()-1)) }, func() { v.Set(old) }})
		}
		for i := 0; i < v.Len(); i++ {
			out = append(out, mutations(fmt.Sprintf("%s[%d]", path, i), v.Index(i))...)
		}
		return out
	case reflect.String:
		old := v.String()
		return []mutation{{path, func() { v.SetString(old + "x") }, func() { v.SetString(old) }}}
	case reflect.Int, reflect.Int64:
		old := v.Int()
		return []mutation{{path, func() { v.SetInt(old + 1) }, func() { v.SetInt(old) }}}
	case reflect.Uint64:
		old := v.Uint()
		return []mutation{{path, func() { v.SetUint(old + 1) }, func() { v.SetUint(old) }}}
	case reflect.Float64:
		old := v.Float()
		return []mutation{{path, func() { v.SetFloat(old + 0.001) }, func() { v.SetFloat(old) }}}
	case reflect.Bool:
		old := v.Bool()
		return []mutation{{path, func() { v.SetBool(!old) }, func() { v.SetBool(old) }}}
	}
	panic("report field of unhandled kind " + v.Kind().String() + " at " + path + ": teach mutations about it")
}

type mutation struct {
	path        string
	apply, undo func()
}

// Every field of the report, its signature's key id included, is covered
// by the signature.
func TestSignatureCoversEveryField(t *testing.T) {
	pub, _ := testKey()
	r := signedSample(t)
	if err := VerifySignature(r, pub); err != nil {
		t.Fatalf("fresh signature: %v", err)
	}
	ms := mutations("Report", reflect.ValueOf(r))
	t.Logf("%d changes tried", len(ms))
	if len(ms) < 500 {
		t.Fatalf("only %d fields walked; the walk is broken", len(ms))
	}
	for _, m := range ms {
		m.apply()
		err := VerifySignature(r, pub)
		m.undo()
		if err == nil {
			t.Errorf("changing %s left the signature valid", m.path)
		}
	}
	if err := VerifySignature(r, pub); err != nil {
		t.Fatalf("after undoing every change: %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	pub, priv := testKey()
	other, _, _ := ed25519.GenerateKey(nil)
	tests := []struct {
		name string
		edit func(r *Report)
		pub  ed25519.PublicKey
		want error
	}{
		{"valid", func(*Report) {}, pub, nil},
		{"other key", func(*Report) {}, other, ErrBadSignature},
		{"unsigned", func(r *Report) { r.Signature = nil }, pub, ErrUnsigned},
		{"empty value", func(r *Report) { r.Signature.Value = "" }, pub, ErrUnsigned},
		{"not base64", func(r *Report) { r.Signature.Value = "%%%" }, pub, ErrBadSignature},
		{"other algorithm", func(r *Report) { r.Signature.Algorithm = "RSA" }, pub, ErrBadSignature},
		{"signature of another report", func(r *Report) {
			o := Sample()
			o.Consortium = "Another"
			if err := Sign(o, priv, "k"); err != nil {
				t.Fatal(err)
			}
			r.Signature = o.Signature
		}, pub, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signedSample(t)
			tt.edit(r)
			err := VerifySignature(r, tt.pub)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignRefusesIncompleteReport(t *testing.T) {
	_, priv := testKey()
	tests := []struct {
		name string
		edit func(r *Report)
		want string
	}{
		{"no schema", func(r *Report) { r.Schema = "" }, "schema"},
		{"no consortium", func(r *Report) { r.Consortium = "" }, "consortium"},
		{"no job", func(r *Report) { r.Subject.JobID = "" }, "job id"},
		{"no time", func(r *Report) { r.GeneratedAt = time.Time{} }, "generated_at"},
		{"no author", func(r *Report) { r.GeneratedBy = "" }, "generated_by"},
		{"no sites", func(r *Report) { r.Sites = nil }, "no sites"},
		{"level unstated", func(r *Report) { r.Privacy.Sites[1].Level = "" }, `site "charite": epsilon level`},
		{"no checkpoint", func(r *Report) { r.Checkpoint.RootHash = "" }, "root hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Sample()
			tt.edit(r)
			err := Sign(r, priv, "k")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
			if r.Signature != nil {
				t.Error("a refused report was given a signature")
			}
		})
	}
	if err := Sign(Sample(), priv[:10], "k"); err == nil {
		t.Error("a short key was accepted")
	}
}
