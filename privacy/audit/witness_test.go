package audit

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestWitness(t *testing.T) {
	f := newFixture(t, NewMemStore(), "st-marys")
	w := f.witnesses[0]
	sign := func() []byte {
		t.Helper()
		s, err := f.log.SignCheckpoint(f.logKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	proofFrom := func(size uint64) [][]byte {
		t.Helper()
		p, err := f.log.ConsistencyProof(size, f.log.Size())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	f.add(t, 5)
	cp5 := sign()
	if _, err := w.Update(cp5, nil); err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	// The same checkpoint again is cosigned again.
	if _, err := w.Update(cp5, nil); err != nil {
		t.Fatalf("same checkpoint: %v", err)
	}

	f.add(t, 4)
	cp9 := sign()
	// Without a proof, or with one for other sizes, the new tree is refused.
	if _, err := w.Update(cp9, nil); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("no proof: %v", err)
	}
	bad, _ := f.log.ConsistencyProof(4, 9)
	if _, err := w.Update(cp9, bad); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("proof from the wrong size: %v", err)
	}
	cosig, err := w.Update(cp9, proofFrom(5))
	if err != nil {
		t.Fatalf("extension: %v", err)
	}
	withCosig, err := AddCosignatures(cp9, cosig)
	if err != nil {
		t.Fatal(err)
	}
	if _, who, err := OpenCheckpoint(withCosig, f.trust); err != nil || len(who) != 1 || who[0] != f.wkeys[0].ID() {
		t.Fatalf("cosignature: %v %v", who, err)
	}

	// Truncation: the older, smaller checkpoint is refused from now on.
	if _, err := w.Update(cp5, nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("smaller tree: %v", err)
	}

	// A split view or rewrite: another history of the same size.
	fork := newFixture(t, NewMemStore(), "st-marys")
	fork.logKey = f.logKey // the same operator, the same key
	fork.t0 = f.t0.Add(time.Hour)
	fork.add(t, 9)
	cpFork, err := fork.log.SignCheckpoint(f.logKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Update(cpFork, nil); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("same size, other root: %v", err)
	}
	// A longer fork with a proof made from the forked tree.
	fork.add(t, 3)
	cpFork12, _ := fork.log.SignCheckpoint(f.logKey)
	p, _ := fork.log.ConsistencyProof(9, 12)
	if _, err := w.Update(cpFork12, p); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("longer fork: %v", err)
	}
	// Not signed by the log key.
	forged, _ := f.log.SignCheckpoint(mustKey(t, "coordinator"))
	if _, err := w.Update(forged, nil); !errors.Is(err, ErrCheckpointSignature) {
		t.Fatalf("forged: %v", err)
	}
	if w.Last().Size != 9 {
		t.Fatalf("a refused update moved the state to %d", w.Last().Size)
	}

	// The state survives a restart, refusals included.
	w2, err := NewWitness(f.wkeys[0], f.trust, w.State())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Update(cp5, nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("restarted witness takes a smaller tree: %v", err)
	}
	f.add(t, 1)
	if _, err := w2.Update(sign(), proofFrom(9)); err != nil {
		t.Fatalf("restarted witness: %v", err)
	}
	if !bytes.Contains(w2.State(), []byte("\n10\n")) {
		t.Errorf("state not updated: %q", w2.State())
	}
}

// Two sites are shown two histories of one log: each cosigns its own, and
// neither history gathers a quorum of two.
func TestSplitViewMissesQuorum(t *testing.T) {
	f := newFixture(t, NewMemStore())
	f.add(t, 4)
	f.checkpoint(t)
	base := f.log.Size()

	// The honest history goes to st-marys, a rewritten one to city-general.
	altLog, _ := Open(NewMemStore(), testOrigin)
	for i := range base {
		r, _ := f.log.Record(i)
		r.Detail += " (rewritten)"
		if _, err := altLog.Append(*r, f.logKey); err != nil {
			t.Fatal(err)
		}
	}
	cpAlt, _ := altLog.SignCheckpoint(f.logKey)
	if _, err := f.witnesses[1].Update(cpAlt, nil); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a witness that saw the honest size-%d tree accepted another: %v", base, err)
	}

	// Fresh witnesses each accept their first view, but no checkpoint has
	// both cosignatures, so no bundle verifies.
	f2 := newFixture(t, NewMemStore())
	f2.add(t, 4)
	cpA, _ := f2.log.SignCheckpoint(f2.logKey)
	altB := NewMemStore()
	lb, _ := Open(altB, testOrigin)
	for i := range 4 {
		r := testRecord(f2.t0, i)
		r.Detail = "other"
		if _, err := lb.Append(r, f2.logKey); err != nil {
			t.Fatal(err)
		}
	}
	cpB, _ := lb.SignCheckpoint(f2.logKey)
	csA, err := f2.witnesses[0].Update(cpA, nil)
	if err != nil {
		t.Fatal(err)
	}
	csB, err := f2.witnesses[1].Update(cpB, nil)
	if err != nil {
		t.Fatal(err)
	}
	withBoth, _ := AddCosignatures(cpA, csA, csB)
	if _, _, err := OpenCheckpoint(withBoth, f2.trust); !errors.Is(err, ErrCosignature) {
		t.Fatalf("cosignature of the other view on this one: %v", err)
	}
	onlyA, _ := AddCosignatures(cpA, csA)
	if err := f2.log.Publish(onlyA); err != nil {
		t.Fatal(err)
	}
	b := f2.export(t, ExportOptions{})
	if _, err := Verify(b, f2.trust, VerifyOptions{}); !errors.Is(err, ErrQuorum) || !bytes.Contains([]byte(err.Error()), []byte("city-general")) {
		t.Fatalf("one view's bundle: %v", err)
	}
}

// The operator deletes the last records on disk, restarts and carries on
// writing: at the next checkpoint every witness refuses, whatever proof
// the log makes, until the tree is back to what they cosigned.
func TestWitnessesCatchTruncateAndContinue(t *testing.T) {
	mem := NewMemStore()
	f := newFixture(t, mem)
	f.add(t, 10)
	f.checkpoint(t)

	mem.truncate(7)
	var err error
	if f.log, err = Open(mem, testOrigin); err != nil {
		t.Fatal(err)
	}
	f.t0 = f.t0.Add(time.Hour)
	f.add(t, 5) // size 12: records 7 to 11 are new
	signed, err := f.log.SignCheckpoint(f.logKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range f.witnesses {
		p, err := f.log.ConsistencyProof(w.Last().Size, f.log.Size())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Update(signed, p); !errors.Is(err, ErrInconsistent) {
			t.Fatalf("witness cosigned a log rewritten after truncation: %v", err)
		}
		if w.Last().Size != 10 {
			t.Fatalf("witness moved to %d", w.Last().Size)
		}
	}
}

func TestAddCosignatures(t *testing.T) {
	f := newFixture(t, NewMemStore())
	f.add(t, 2)
	signed, _ := f.log.SignCheckpoint(f.logKey)
	cs, err := f.witnesses[0].Update(signed, nil)
	if err != nil {
		t.Fatal(err)
	}
	once, err := AddCosignatures(signed, cs)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := AddCosignatures(once, cs)
	if err != nil || !bytes.Equal(once, twice) || bytes.Count(once, []byte("\n— ")) != 2 {
		t.Fatalf("adding a cosignature twice:\n%s", twice)
	}
	for _, bad := range []string{"st-marys abc\n", "— st-marys abc"} {
		if _, err := AddCosignatures(signed, []byte(bad)); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := AddCosignatures([]byte("no signatures"), cs); !errors.Is(err, ErrMalformedCheckpoint) {
		t.Errorf("unsigned: %v", err)
	}
}
