package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// signedLog is a log of n records with a checkpoint cosigned by both sites.
func signedLog(t *testing.T, n int) (*fixture, *Bundle) {
	t.Helper()
	f := newFixture(t, NewMemStore())
	f.add(t, n)
	f.checkpoint(t)
	return f, f.export(t, ExportOptions{})
}

// wantRecordErr checks err names record index and wraps want (nil: any).
func wantRecordErr(t *testing.T, what string, err error, index uint64, want error) {
	t.Helper()
	var re *RecordError
	if !errors.As(err, &re) {
		t.Fatalf("%s: err = %v, want a RecordError naming record %d", what, err, index)
	}
	if re.Index != index {
		t.Fatalf("%s: names record %d, want %d: %v", what, re.Index, index, err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func TestVerifyGood(t *testing.T) {
	f, b := signedLog(t, 11)
	rep, err := Verify(clone(t, b), f.trust, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != 11 || rep.Records != 11 || !rep.Whole || !rep.Trusted || len(rep.Cosigners) != 2 ||
		strings.Join(rep.Jobs, ",") != "1,2" || !rep.First.Equal(f.t0) {
		t.Errorf("report %+v", rep)
	}
	// Without a trust file the bundle's own keys are used, and said so.
	if rep, err := Verify(b, nil, VerifyOptions{}); err != nil || rep.Trusted {
		t.Errorf("untrusted: %+v %v", rep, err)
	}
	if err := VerifyStore(f.store, f.trust); err != nil {
		t.Errorf("VerifyStore: %v", err)
	}
}

// Flipping any bit pattern into any byte of any record is caught, and the
// error names that record.
func TestVerifyEveryByteFlipped(t *testing.T) {
	f, b := signedLog(t, 5)
	for i := range b.Records {
		for j := range b.Records[i].Leaf {
			c := clone(t, b)
			c.Records[i].Leaf[j] ^= 0x01
			_, err := Verify(c, f.trust, VerifyOptions{})
			wantRecordErr(t, "flip", err, uint64(i), nil)
			c.Records[i].Leaf[j] ^= 0xff
			_, err = Verify(c, f.trust, VerifyOptions{})
			wantRecordErr(t, "invert", err, uint64(i), nil)
		}
	}
}

func TestVerifyDeleted(t *testing.T) {
	f, b := signedLog(t, 6)
	for i := range b.Records {
		c := clone(t, b)
		c.Records = append(c.Records[:i], c.Records[i+1:]...)
		_, err := Verify(c, f.trust, VerifyOptions{})
		wantRecordErr(t, "delete", err, uint64(i), ErrMissing)

		// Renumbered after the deletion, the next record's signed
		// sequence number gives it away.
		for k := i; k < len(c.Records); k++ {
			c.Records[k].Index = uint64(k)
		}
		_, err = Verify(c, f.trust, VerifyOptions{})
		if i == len(b.Records)-1 {
			wantRecordErr(t, "delete last", err, uint64(i), ErrMissing)
		} else {
			wantRecordErr(t, "delete and renumber", err, uint64(i), ErrSeq)
		}
	}
}

// The operator deletes the last records and shows the older checkpoint
// that covered the rest: it verifies alone, but not against the newer
// checkpoint a witness or an earlier verifier saw.
func TestVerifyTruncatedToOlderCheckpoint(t *testing.T) {
	f := newFixture(t, NewMemStore())
	f.add(t, 7)
	f.checkpoint(t)
	old := f.export(t, ExportOptions{})
	f.add(t, 3)
	newer := f.checkpoint(t)

	if _, err := Verify(old, f.trust, VerifyOptions{}); err != nil {
		t.Fatalf("the old bundle is valid on its own: %v", err)
	}
	_, err := Verify(old, f.trust, VerifyOptions{Earlier: [][]byte{newer}})
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "records 7 to 9 were deleted") {
		t.Fatalf("truncated: %v", err)
	}
	// The whole, current log extends both checkpoints.
	oldCP := []byte(old.Checkpoint)
	rep, err := Verify(f.export(t, ExportOptions{}), f.trust, VerifyOptions{Earlier: [][]byte{oldCP, newer}})
	if err != nil || len(rep.Consistent) != 2 {
		t.Fatalf("current log: %+v %v", rep, err)
	}
	// And a witness refuses to go back.
	if _, err := f.witnesses[0].Update([]byte(old.Checkpoint), nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("witness: %v", err)
	}
}

func TestVerifyReordered(t *testing.T) {
	f, b := signedLog(t, 6)
	c := clone(t, b)
	c.Records[2].Leaf, c.Records[4].Leaf = c.Records[4].Leaf, c.Records[2].Leaf
	_, err := Verify(c, f.trust, VerifyOptions{})
	wantRecordErr(t, "swap leaves", err, 2, ErrSeq)

	c = clone(t, b)
	c.Records[2], c.Records[4] = c.Records[4], c.Records[2]
	_, err = Verify(c, f.trust, VerifyOptions{})
	wantRecordErr(t, "swap entries", err, 2, ErrOrder)

	c = clone(t, b)
	c.Records = append(c.Records[:4], c.Records[3:]...)
	_, err = Verify(c, f.trust, VerifyOptions{})
	wantRecordErr(t, "duplicate", err, 3, ErrOrder)
}

// resign is the attacker's best effort: it applies edit to record i of b,
// renumbers and re-signs every record from i on with k, and returns the
// rebuilt tree's checkpoint, unsigned.
func resign(t *testing.T, b *Bundle, i int, k *Key, edit func(*Record)) Checkpoint {
	t.Helper()
	leaves := make([][]byte, len(b.Records))
	for j, br := range b.Records {
		b.Records[j].Index = uint64(j)
		if j >= i {
			r, err := DecodeRecord(br.Leaf)
			if err != nil {
				t.Fatal(err)
			}
			if j == i {
				edit(r)
			}
			r.Seq = uint64(j)
			if err := r.Sign(k); err != nil {
				t.Fatal(err)
			}
			b.Records[j].Leaf = r.Leaf()
		}
		leaves[j] = b.Records[j].Leaf
	}
	return Checkpoint{Origin: b.Origin, Size: uint64(len(leaves)), Root: mth(leaves)}
}

func TestVerifyEditedAndResigned(t *testing.T) {
	f, b := signedLog(t, 8)
	edit := func(r *Record) { r.Actor = "admin:mallory" }

	// With an attacker's key: the first edited record is named.
	c := clone(t, b)
	resign(t, c, 3, mustKey(t, "coordinator"), edit)
	_, err := Verify(c, f.trust, VerifyOptions{})
	wantRecordErr(t, "attacker's key", err, 3, ErrUnknownSigner)
	if !strings.Contains(err.Error(), "record 3 (round.aggregated by admin:mallory)") {
		t.Errorf("message: %v", err)
	}

	// With the coordinator's own key, keeping the witnessed checkpoint:
	// every record verifies but the root does not.
	c = clone(t, b)
	cp := resign(t, c, 3, f.logKey, edit)
	if _, err := Verify(c, f.trust, VerifyOptions{}); !errors.Is(err, ErrRoot) {
		t.Fatalf("re-signed, old checkpoint: %v", err)
	}

	// And a new checkpoint signed by the coordinator: the witnesses'
	// cosignatures are over the old root.
	signed, err := SignCheckpoint(cp, f.logKey)
	if err != nil {
		t.Fatal(err)
	}
	_, oldSigs, _ := sigLines([]byte(b.Checkpoint))
	c.Checkpoint = string(mustAdd(t, signed, oldSigs[1:]...))
	if _, err := Verify(c, f.trust, VerifyOptions{}); !errors.Is(err, ErrCosignature) {
		t.Fatalf("re-signed, old cosignatures: %v", err)
	}
	// Without them, too few witnesses.
	c.Checkpoint = string(signed)
	if _, err := Verify(c, f.trust, VerifyOptions{}); !errors.Is(err, ErrQuorum) {
		t.Fatalf("re-signed, no cosignatures: %v", err)
	}
	// A verifier who trusts the log key alone still sees the rewrite
	// against a checkpoint it saw before (here, a witness's state).
	logOnly, err := NewTrust(testOrigin, f.trust.Logs, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(c, logOnly, VerifyOptions{}); err != nil {
		t.Fatalf("without witnesses the rewrite is self-consistent: %v", err)
	}
	_, err = Verify(c, logOnly, VerifyOptions{Earlier: [][]byte{f.witnesses[0].State()}})
	if !errors.Is(err, ErrInconsistent) {
		t.Fatalf("rewrite against the witness's state: %v", err)
	}
}

// The coordinator re-chains the log with its own key after deleting a
// record and attaches witness cosignatures from an older checkpoint.
func TestVerifyOlderCosignatures(t *testing.T) {
	f := newFixture(t, NewMemStore())
	f.add(t, 5)
	older := f.checkpoint(t)
	f.add(t, 4)
	f.checkpoint(t)
	b := f.export(t, ExportOptions{})

	c := clone(t, b)
	c.Records = append(c.Records[:2], c.Records[3:]...)
	cp := resign(t, c, 2, f.logKey, func(*Record) {})
	signed, _ := SignCheckpoint(cp, f.logKey)
	_, olderSigs, _ := sigLines(older)
	c.Checkpoint = string(mustAdd(t, signed, olderSigs[1:]...))
	_, err := Verify(c, f.trust, VerifyOptions{})
	if !errors.Is(err, ErrCosignature) || !strings.Contains(err.Error(), "size 8") {
		t.Fatalf("older cosignatures: %v", err)
	}
	// Every record and the tree are otherwise valid: only the witnesses
	// stand in the way.
	c.Checkpoint = string(signed)
	if _, err := Verify(c, f.trust, VerifyOptions{}); !errors.Is(err, ErrQuorum) {
		t.Fatalf("no cosignatures: %v", err)
	}
}

func mustAdd(t *testing.T, signed []byte, lines ...[]byte) []byte {
	t.Helper()
	out, err := AddCosignatures(signed, lines...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyTruncatedFile(t *testing.T) {
	_, b := signedLog(t, 4)
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(data); n++ {
		if n > 200 && n < len(data)-200 && n%13 != 0 {
			continue
		}
		if _, err := ParseBundle(data[:n]); !errors.Is(err, ErrBundle) {
			t.Fatalf("cut at %d of %d: err = %v", n, len(data), err)
		}
	}
	if _, err := ParseBundle(data[:len(data)-1]); !strings.Contains(err.Error(), "truncated") {
		t.Errorf("message: %v", err)
	}
	if _, err := ParseBundle(append(data, []byte(`{}`)...)); !errors.Is(err, ErrBundle) {
		t.Errorf("trailing data: %v", err)
	}
	other := bytes.Replace(data, []byte(BundleFormat), []byte("concord-audit-bundle/v9"), 1)
	if _, err := ParseBundle(other); !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), "v9") {
		t.Errorf("other version: %v", err)
	}
}

func TestVerifyOtherConsortium(t *testing.T) {
	f, _ := signedLog(t, 3)
	_, theirs := signedLog(t, 3)
	_, err := Verify(theirs, f.trust, VerifyOptions{})
	if !errors.Is(err, ErrCheckpointSignature) || !strings.Contains(err.Error(), "another consortium") {
		t.Fatalf("other consortium: %v", err)
	}
	// Same keys, other origin.
	t2, err := NewTrust("other.example.org/audit", f.trust.Logs, nil, f.trust.Witnesses, 0)
	if err != nil {
		t.Fatal(err)
	}
	fb := f.export(t, ExportOptions{})
	if _, err := Verify(fb, t2, VerifyOptions{}); !errors.Is(err, ErrOrigin) {
		t.Fatalf("other origin: %v", err)
	}
}

func TestVerifyJobBundle(t *testing.T) {
	f := newFixture(t, NewMemStore())
	f.add(t, 20)
	f.checkpoint(t)
	b := f.export(t, ExportOptions{JobID: "2"})
	rep, err := Verify(clone(t, b), f.trust, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Whole || rep.Records != 8 || strings.Join(rep.Jobs, ",") != "2" {
		t.Errorf("report %+v", rep)
	}
	c := clone(t, b)
	c.Records[3].Proof[0][0] ^= 1
	_, err = Verify(c, f.trust, VerifyOptions{})
	wantRecordErr(t, "bad proof", err, b.Records[3].Index, nil)

	c = clone(t, b)
	c.Records[3].Leaf, c.Records[4].Leaf = c.Records[4].Leaf, c.Records[3].Leaf
	_, err = Verify(c, f.trust, VerifyOptions{})
	wantRecordErr(t, "swapped", err, b.Records[3].Index, ErrSeq)

	// Another job's record, with a valid proof, passed off as this job's.
	other := f.export(t, ExportOptions{JobID: "1"})
	c = clone(t, b)
	c.Records = append([]BundleRecord{other.Records[0]}, c.Records...)
	_, err = Verify(c, f.trust, VerifyOptions{})
	wantRecordErr(t, "other job", err, other.Records[0].Index, nil)

	// Proofs stripped, posing as the whole log.
	c = clone(t, b)
	c.Job = ""
	if _, err := Verify(c, f.trust, VerifyOptions{}); err == nil {
		t.Fatal("a one-job bundle passed as the whole log")
	}

	// A job with no records exports and verifies as empty.
	empty := f.export(t, ExportOptions{JobID: "none"})
	if rep, err := Verify(clone(t, empty), f.trust, VerifyOptions{}); err != nil || rep.Records != 0 || rep.Job != "none" {
		t.Fatalf("empty job: %+v %v", rep, err)
	}
}

func TestVerifyStore(t *testing.T) {
	f := newFixture(t, NewMemStore())
	f.add(t, 9)
	f.checkpoint(t)
	mem := f.store.(*MemStore)
	if err := VerifyStore(mem, f.trust); err != nil {
		t.Fatal(err)
	}

	// A record rewritten and re-signed with the log key: its stored hash
	// no longer matches.
	r, _ := f.log.Record(4)
	orig, _ := mem.Leaf(4)
	r.Detail = "nothing happened"
	if err := r.Sign(f.logKey); err != nil {
		t.Fatal(err)
	}
	mem.setLeaf(4, r.Leaf())
	wantRecordErr(t, "rewritten", VerifyStore(mem, f.trust), 4, nil)

	// A record corrupted on disk.
	bad := bytes.Clone(orig)
	bad[len(bad)-1] ^= 1
	mem.setLeaf(4, bad)
	wantRecordErr(t, "corrupted", VerifyStore(mem, f.trust), 4, ErrRecordSignature)
	mem.setLeaf(4, orig)

	// The last records deleted under the checkpoint.
	mem.truncate(7)
	if err := VerifyStore(mem, f.trust); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}
