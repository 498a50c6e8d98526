package audit

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	k := mustKey(t, "coordinator")
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for i := range 8 {
		r := testRecord(t0, i)
		r.Seq = uint64(i)
		if err := r.Sign(k); err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(r.Leaf())
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !got.Time.Equal(r.Time) || got.Time.Location() != time.UTC {
			t.Errorf("time %v, want %v in UTC", got.Time, r.Time)
		}
		got.Time = r.Time
		if !reflect.DeepEqual(got, &r) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, &r)
		}
	}
}

func TestDecodeRecordRefuses(t *testing.T) {
	k := mustKey(t, "coordinator")
	r := testRecord(time.Unix(1e9, 0), 2)
	r.Seq = 5
	if err := r.Sign(k); err != nil {
		t.Fatal(err)
	}
	leaf := r.Leaf()
	overlong := append([]byte{1, 0x85, 0x00}, leaf[2:]...) // seq 5 as a two-byte varint
	cases := map[string][]byte{
		"empty":          nil,
		"version 2":      append([]byte{2}, leaf[1:]...),
		"trailing byte":  append(append([]byte{}, leaf...), 0),
		"truncated":      leaf[:len(leaf)-1],
		"overlong seq":   overlong,
		"too big":        bytes.Repeat([]byte{1}, MaxLeafBytes+1),
		"only a version": {1},
	}
	for name, b := range cases {
		if _, err := DecodeRecord(b); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("%s: err = %v, want ErrMalformedRecord", name, err)
		}
	}
}

func TestRecordCheck(t *testing.T) {
	k := mustKey(t, "coordinator")
	base := testRecord(time.Unix(1e9, 0), 0)
	cases := map[string]func(r *Record){
		"no time":     func(r *Record) { r.Time = time.Time{} },
		"no kind":     func(r *Record) { r.Kind = "" },
		"not utf-8":   func(r *Record) { r.Detail = "\xff" },
		"huge detail": func(r *Record) { r.Detail = strings.Repeat("x", MaxLeafBytes) },
		"far future":  func(r *Record) { r.Time = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"many fields": func(r *Record) { r.Data = make([]DataField, maxDataFields+1) },
	}
	for name, edit := range cases {
		r := base
		edit(&r)
		if err := r.Sign(k); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("%s: err = %v, want ErrMalformedRecord", name, err)
		}
	}
}

// FuzzDecodeRecord: any bytes either fail to decode or decode to a record
// whose encoding is exactly those bytes.
func FuzzDecodeRecord(f *testing.F) {
	k := mustKey(f, "coordinator")
	for i := range 4 {
		r := testRecord(time.Unix(1e9, 0), i)
		r.Seq = uint64(i)
		if err := r.Sign(k); err != nil {
			f.Fatal(err)
		}
		f.Add(r.Leaf())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Leaf(), b) {
			t.Fatalf("decoded record re-encodes differently")
		}
	})
}
