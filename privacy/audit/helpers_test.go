package audit

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

const testOrigin = "concord.example.org/audit"

// fixture is a consortium: a coordinator's log and key, witnessing sites,
// and the trust file that names them.
type fixture struct {
	store     Store
	log       *Log
	logKey    *Key
	wkeys     []*Key
	witnesses []*Witness
	trust     *Trust
	t0        time.Time
}

func newFixture(t testing.TB, store Store, sites ...string) *fixture {
	t.Helper()
	if len(sites) == 0 {
		sites = []string{"st-marys", "city-general"}
	}
	f := &fixture{store: store, logKey: mustKey(t, "coordinator"), t0: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	var wv []string
	for _, s := range sites {
		k := mustKey(t, s)
		f.wkeys = append(f.wkeys, k)
		wv = append(wv, k.Verifier())
	}
	var err error
	if f.trust, err = NewTrust(testOrigin, []string{f.logKey.Verifier()}, nil, wv, 0); err != nil {
		t.Fatal(err)
	}
	for _, k := range f.wkeys {
		w, err := NewWitness(k, f.trust, nil)
		if err != nil {
			t.Fatal(err)
		}
		f.witnesses = append(f.witnesses, w)
	}
	if f.log, err = Open(store, testOrigin); err != nil {
		t.Fatal(err)
	}
	return f
}

func mustKey(t testing.TB, name string) *Key {
	t.Helper()
	k, err := GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var kinds = []struct{ kind, actor string }{
	{"job.submitted", "admin:alice"},
	{"task.sent", "coordinator"},
	{"upload.accepted", "site:st-marys"},
	{"round.aggregated", "coordinator"},
}

// testRecord is the i-th record of a test log.
func testRecord(t0 time.Time, i int) Record {
	k := kinds[i%len(kinds)]
	r := Record{Time: t0.Add(time.Duration(i) * time.Second), Kind: k.kind, Actor: k.actor,
		JobID: fmt.Sprint(1 + i/8), Round: uint32(i % 8), Site: "st-marys", Detail: fmt.Sprintf("event %d", i)}
	if k.kind == "upload.accepted" {
		r.Data = []DataField{{Name: "update", Size: uint64(1000 + i), SHA256: sha256.Sum256([]byte(fmt.Sprint(i)))}}
	}
	return r
}

// add appends n records.
func (f *fixture) add(t testing.TB, n int) {
	t.Helper()
	for range n {
		if _, err := f.log.Append(testRecord(f.t0, int(f.log.Size())), f.logKey); err != nil {
			t.Fatal(err)
		}
	}
}

// checkpoint signs the current state, has every witness cosign it and
// publishes it, as the coordinator does.
func (f *fixture) checkpoint(t testing.TB) []byte {
	t.Helper()
	signed, err := f.log.SignCheckpoint(f.logKey)
	if err != nil {
		t.Fatal(err)
	}
	var cosigs [][]byte
	for _, w := range f.witnesses {
		p, err := f.log.ConsistencyProof(w.Last().Size, f.log.Size())
		if err != nil {
			t.Fatal(err)
		}
		cs, err := w.Update(signed, p)
		if err != nil {
			t.Fatalf("witness: %v", err)
		}
		cosigs = append(cosigs, cs)
	}
	if signed, err = AddCosignatures(signed, cosigs...); err != nil {
		t.Fatal(err)
	}
	if err := f.log.Publish(signed); err != nil {
		t.Fatal(err)
	}
	return signed
}

func (f *fixture) export(t testing.TB, opt ExportOptions) *Bundle {
	t.Helper()
	b, err := Export(f.log, f.trust, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clone deep-copies a bundle through its file form.
func clone(t testing.TB, b *Bundle) *Bundle {
	t.Helper()
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
