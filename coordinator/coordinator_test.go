package coordinator

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func testStore(t *testing.T) *store {
	t.Helper()
	st, err := openStore(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testCoordinator(t *testing.T) *Coordinator {
	t.Helper()
	st := testStore(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key, err := audit.GenerateKey(nil, "coordinator")
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBus(st, log, time.Now, key, "concord/test")
	if err != nil {
		t.Fatal(err)
	}
	return &Coordinator{cfg: Config{StreamTimeout: time.Second, AuditKey: key}, log: log, now: time.Now, st: st, bus: b,
		jobs: map[string]*job{}, sessions: map[string]*session{}, sites: map[string]*siteRecord{},
		uploads: map[*inflight]struct{}{}, revoked: map[string]bool{}}
}

// testJob is a plaintext job of 10 parameters at the start of round 1, with
// sites a and b as members.
func testJob(t *testing.T, spec *pb.JobSpec) *job {
	t.Helper()
	if spec == nil {
		spec = &pb.JobSpec{Rounds: 2, MinSites: 1, RoundDeadlineSeconds: 60, Sites: []string{"a", "b"}}
	}
	m, err := round.New(machineConfig(spec))
	if err != nil {
		t.Fatal(err)
	}
	m.Step(round.Event{Type: round.EvStart, Now: time.Now(), Sites: []string{"a", "b"}})
	m.Step(round.Event{Type: round.EvTick, Now: time.Now()})
	return &job{rec: &jobRecord{ID: "1", Params: 10, LayoutHash: "L", Nonces: map[string]string{"update/1/a": "00"}}, spec: spec, m: m}
}

func TestBound(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{"a\nb\tc", "a b c"},
		{"bell\x07", "bell?"},
		{strings.Repeat("x", 100), strings.Repeat("x", 10) + "…"},
		{"ééééééé", "ééééé…"}, // 10 bytes keep 5 two-byte runes whole
	} {
		got := bound(tc.in, 10)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("bound(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := q(strings.Repeat("y", 1<<20)); len(got) > maxEchoBytes+8 {
		t.Errorf("q echoes %d bytes", len(got))
	}
}

func TestPageSize(t *testing.T) {
	for in, want := range map[uint32]int{0: defaultPageSize, 1: 1, maxPageSize: maxPageSize, 1 << 30: maxPageSize} {
		if got := pageSize(in); got != want {
			t.Errorf("pageSize(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestCheckHeader(t *testing.T) {
	c := testCoordinator(t)
	j := testJob(t, nil)
	good := func() *pb.UploadHeader {
		return &pb.UploadHeader{Kind: pb.UploadKind_UPLOAD_KIND_UPDATE, TotalChunks: 1, TotalBytes: 40, Sha256: make([]byte, sha256.Size),
			SampleCount: 5, LayoutHash: "L", Metrics: map[string]float64{"train_loss": 0.5}}
	}
	if err := c.checkHeader(j, "a", round.KindUpdate, good()); err != nil {
		t.Fatalf("a good header was refused: %v", err)
	}
	many := map[string]float64{}
	for i := range maxMetrics + 1 {
		many[strings.Repeat("m", i+1)] = 1
	}
	for _, tc := range []struct {
		name string
		edit func(h *pb.UploadHeader)
		want string
	}{
		{"no checksum", func(h *pb.UploadHeader) { h.Sha256 = nil }, "SHA-256"},
		{"too few chunks", func(h *pb.UploadHeader) { h.TotalBytes = 3 * ChunkSize; h.TotalChunks = 2 }, "cannot carry"},
		{"wrong size", func(h *pb.UploadHeader) { h.TotalBytes = 44 }, "float32 parameters"},
		{"wrong layout", func(h *pb.UploadHeader) { h.LayoutHash = "other" }, "layout"},
		{"huge layout hash", func(h *pb.UploadHeader) { h.LayoutHash = strings.Repeat("z", 1<<20) }, "too long"},
		{"no samples", func(h *pb.UploadHeader) { h.SampleCount = 0 }, "sample count"},
		{"NaN metric", func(h *pb.UploadHeader) { h.Metrics["loss"] = nan() }, "is NaN"},
		{"too many metrics", func(h *pb.UploadHeader) { h.Metrics = many }, "at most"},
		{"huge metric name", func(h *pb.UploadHeader) { h.Metrics = map[string]float64{strings.Repeat("k", 1<<16): 1} }, "names hold"},
		{"encrypted in a plaintext job", func(h *pb.UploadHeader) { h.Kind = pb.UploadKind_UPLOAD_KIND_ENCRYPTED_UPDATE }, "plaintext update"},
	} {
		h := good()
		tc.edit(h)
		err := c.checkHeader(j, "a", round.KindUpdate, h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
		if err != nil && len(err.Error()) > 512 {
			t.Errorf("%s: %d-byte error echoes the peer's input", tc.name, len(err.Error()))
		}
	}
}

func nan() float64 { var z float64; return z / z }

func TestBlobAccessRules(t *testing.T) {
	c := testCoordinator(t)
	j := testJob(t, &pb.JobSpec{Rounds: 1, MinSites: 1, RoundDeadlineSeconds: 60, ValidationSites: []string{"v"}})
	j.rec.Nonces = map[string]string{"update/1/a": "00", "key-share/0/b": "01"}
	c.jobs["1"] = j
	for _, tc := range []struct {
		blob, site string
		ok         bool
	}{
		{"model/1/0", "a", true},                 // sent a task
		{"model/1/0", "b", true},                 // key holder
		{"model/1/0", "v", true},                 // validation site
		{"model/1/0", "x", false},                // not in the job
		{"model/2/0", "a", false},                // no such job
		{"he/1/relay/a", "a", true},              // its own relayed shares
		{"he/1/relay/b", "a", false},             // another site's
		{"he/1/request/1.1", "b", true},          // decryption request
		{"upload/1/update/1/b", "a", false},      // another site's update
		{"he-agg/1/1", "a", false},               // the encrypted sum
		{"model/1/0/../../he-agg/1", "a", false}, // no path games
	} {
		got := blobReadableBy(tc.blob, tc.site) && c.jobMember(blobJob(tc.blob), tc.site)
		if got != tc.ok {
			t.Errorf("%s reading %s: %v, want %v", tc.site, tc.blob, got, tc.ok)
		}
	}
}

func TestDropRoundUploads(t *testing.T) {
	st := testStore(t)
	put := func(kind round.Kind, r int, site string) string {
		name := uploadBlob("7", kind, r, site)
		if err := st.db.Update(func(tx *bolt.Tx) error {
			if _, err := putBlob(tx, name, []byte("data")); err != nil {
				return err
			}
			return putJSON(tx, bUploads, name, &uploadRecord{Site: site, Kind: kind, Round: r})
		}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	gone := []string{put(round.KindUpdate, 1, "a"), put(round.KindUpdate, 1, "b"), put(round.KindDecryption, 1, "a")}
	kept := []string{put(round.KindUpdate, 2, "a"), put(round.KindKeyShare, 0, "a"), put(round.KindShamirShares, 0, "b"),
		uploadBlob("70", round.KindUpdate, 1, "a")}
	if err := st.db.Update(func(tx *bolt.Tx) error {
		_, err := putBlob(tx, kept[3], []byte("other job"))
		if err != nil {
			return err
		}
		if err := putJSON(tx, bUploads, kept[3], &uploadRecord{Site: "a", Kind: round.KindUpdate, Round: 1}); err != nil {
			return err
		}
		return (&Coordinator{}).dropRoundUploads(tx, "7", 1)
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range gone {
		if _, err := st.blobInfo(n); err == nil {
			t.Errorf("%s survived its round", n)
		}
	}
	for _, n := range kept {
		if _, err := st.blobInfo(n); err != nil {
			t.Errorf("%s was dropped: %v", n, err)
		}
	}
}

func TestEventsSurviveABadRecord(t *testing.T) {
	c := testCoordinator(t)
	for i := 0; i < 5; i++ {
		c.bus.emit(Event{Kind: EvRoundNote, JobID: "1", Detail: strings.Repeat("d", 1<<20)})
	}
	if err := c.st.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(auditBucket)).Bucket([]byte("leaves")).Put(binary.BigEndian.AppendUint64(nil, 2), []byte("not a record"))
	}); err != nil {
		t.Fatal(err)
	}
	evs, more, err := c.bus.events("", 0, 3)
	if err != nil {
		t.Fatalf("one bad record broke the listing: %v", err)
	}
	if len(evs) != 3 || !more || evs[2].Kind != "event.unreadable" {
		t.Fatalf("got %d events (more %v), third %q", len(evs), more, evs[2].Kind)
	}
	for _, e := range evs {
		if len(e.Detail) > maxDetailBytes+4 {
			t.Errorf("event %d detail is %d bytes", e.Seq, len(e.Detail))
		}
	}
	rest, more, err := c.bus.events("", evs[2].Seq, 3)
	if err != nil || more || len(rest) != 2 {
		t.Fatalf("second page: %d events, more %v, %v", len(rest), more, err)
	}
}

// TestStepRollsBackWhenSaveFails: when the job's state cannot be written,
// the machine in memory is put back, so memory never runs ahead of disk.
func TestStepRollsBackWhenSaveFails(t *testing.T) {
	c := testCoordinator(t)
	j := testJob(t, nil)
	c.jobs["1"], c.order = j, []string{"1"}
	before := j.m.State()
	c.st.db.Close()
	c.mu.Lock()
	c.stepLocked(j, round.Event{Type: round.EvDelivered, Now: time.Now(), Site: "a", Kind: round.KindUpdate, Round: 1})
	c.mu.Unlock()
	after := j.m.State()
	if len(after.Delivered) != len(before.Delivered) || after.Phase != before.Phase {
		t.Fatalf("state moved on without being saved: delivered %v -> %v, phase %s -> %s", before.Delivered, after.Delivered, before.Phase, after.Phase)
	}
	if len(j.rec.State.Delivered) != len(before.Delivered) {
		t.Fatalf("the job record kept the unsaved state")
	}
}

// TestTaskFailedNeedsTheTask: a failure report is tied to the job only when
// it names a task that was sent to that site.
func TestTaskFailedNeedsTheTask(t *testing.T) {
	c := testCoordinator(t)
	j := testJob(t, nil)
	c.jobs["1"], c.order = j, []string{"1"}
	c.taskFailed("b", "1/update/1/a", "spoofed report for a's task")
	c.taskFailed("a", "1/update/1/a", strings.Repeat("r", 10))
	if len(j.rec.Failures) != 1 || j.rec.Failures[0].Site != "a" || j.rec.Failures[0].Round != 1 {
		t.Fatalf("failures: %+v", j.rec.Failures)
	}
	if c.sites["a"].LastFailure == nil || c.sites["b"] != nil && c.sites["b"].LastFailure != nil {
		t.Fatalf("site records: a %+v, b %+v", c.sites["a"], c.sites["b"])
	}
	if reason, ok := j.m.State().Failed["a"]; !ok || reason == "" {
		t.Fatalf("the machine did not hear of a's failure: %v", j.m.State().Failed)
	}
}

// TestAuditLogDetectsTampering: the coordinator's events are signed audit
// records; an edited record fails verification, and a coordinator refuses
// to start on such a log unless told to.
func TestAuditLogDetectsTampering(t *testing.T) {
	c := testCoordinator(t)
	for i := 0; i < 4; i++ {
		c.bus.emit(Event{Kind: EvJobSubmitted, Actor: "admin:alice", JobID: "1", Detail: fmt.Sprintf("event %d", i)})
	}
	if _, _, err := c.bus.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.VerifyAudit(); err != nil || n != 4 {
		t.Fatalf("an untouched log: %d records, %v", n, err)
	}
	if err := c.st.db.Update(func(tx *bolt.Tx) error {
		leaves := tx.Bucket([]byte(auditBucket)).Bucket([]byte("leaves"))
		k := binary.BigEndian.AppendUint64(nil, 1)
		leaf := bytes.Clone(leaves.Get(k))
		i := bytes.Index(leaf, []byte("event 1"))
		leaf[i+6] = '9' // "event 9"
		return leaves.Put(k, leaf)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyAudit(); err == nil {
		t.Fatal("an edited record passed verification")
	}
}

// TestWitnessKeepsUpWhenTheLogMovesOn: a site cosigns a checkpoint after
// the coordinator signed a newer one. The coordinator still learns the size
// the site witnessed, so the next offer's proof starts where the site is
// (before, it restarted from the old size and the site refused every later
// checkpoint).
func TestWitnessKeepsUpWhenTheLogMovesOn(t *testing.T) {
	c := testCoordinator(t)
	wkey, err := audit.GenerateKey(nil, "st-marys")
	if err != nil {
		t.Fatal(err)
	}
	trust, err := audit.NewTrust("concord/test", []string{c.cfg.AuditKey.Verifier()}, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWitness(wkey, trust, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.bus.emit(Event{Kind: EvRoundNote, Detail: "one"})
	a, sizeA, err := c.bus.checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c.bus.emit(Event{Kind: EvRoundNote, Detail: "two"})
	if _, _, err := c.bus.checkpoint(); err != nil { // the log moved on
		t.Fatal(err)
	}
	line, err := w.Update(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.bus.cosign(a, line, wkey.Verifier())
	if err != nil || got != sizeA {
		t.Fatalf("cosignature of the older checkpoint: size %d, %v; want %d", got, err, sizeA)
	}
	b, sizeB, err := c.bus.checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	proof, err := c.bus.proof(got, sizeB)
	if err != nil {
		t.Fatal(err)
	}
	line, err = w.Update(b, proof)
	if err != nil {
		t.Fatalf("the next checkpoint, proved from the size the site witnessed: %v", err)
	}
	if got, err := c.bus.cosign(b, line, wkey.Verifier()); err != nil || got != sizeB {
		t.Fatalf("cosignature of the latest: %d, %v", got, err)
	}
	latest, _ := c.bus.alog.Latest()
	full, _ := audit.NewTrust("concord/test", []string{c.cfg.AuditKey.Verifier()}, nil, []string{wkey.Verifier()}, 1)
	if _, cosigners, err := audit.OpenCheckpoint(latest, full); err != nil || len(cosigners) != 1 {
		t.Fatalf("stored checkpoint cosigners %v, %v", cosigners, err)
	}
}
