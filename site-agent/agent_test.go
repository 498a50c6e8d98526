package siteagent

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"
)

func TestClipL2(t *testing.T) {
	v := []float32{3, 4}
	if n := ClipL2(v, 1); n != 5 || math.Abs(float64(v[0])-0.6) > 1e-6 || math.Abs(float64(v[1])-0.8) > 1e-6 {
		t.Fatalf("clip to 1: norm %g, vector %v", n, v)
	}
	w := []float32{0.3, 0.4}
	if ClipL2(w, 1); w[0] != 0.3 || w[1] != 0.4 {
		t.Fatalf("a vector inside the bound changed: %v", w)
	}
	u := []float32{30, 40}
	if ClipL2(u, 0); u[0] != 30 {
		t.Fatalf("bound 0 must mean no clipping: %v", u)
	}
}

func TestTrainingSeedIsStableAndDistinct(t *testing.T) {
	a := TrainingSeed(7, 1, "st-marys")
	if a != TrainingSeed(7, 1, "st-marys") {
		t.Fatal("seed not deterministic")
	}
	for _, b := range []int64{TrainingSeed(7, 2, "st-marys"), TrainingSeed(7, 1, "riverside"), TrainingSeed(8, 1, "st-marys")} {
		if a == b {
			t.Fatal("different (job seed, round, site) gave the same training seed")
		}
	}
}

func TestPendingUploadRoundTrip(t *testing.T) {
	st, err := openState(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	chunks := [][]byte{[]byte("first chunk"), bytes.Repeat([]byte{7}, 3000), []byte("x")}
	sub, err := st.writeChunks("job/1", chunks)
	if err != nil {
		t.Fatal(err)
	}
	sub.Nonce = []byte("n")
	if err := st.putSubmission(sub); err != nil {
		t.Fatal(err)
	}
	got, err := st.submission("job/1")
	if err != nil || got == nil || got.Chunks != 3 || got.Bytes != int64(11+3000+1) {
		t.Fatalf("submission %+v, %v", got, err)
	}
	var read [][]byte
	if err := readChunks(got, 1, func(i int, d []byte) error { read = append(read, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(read) != 2 || !bytes.Equal(read[0], chunks[1]) || !bytes.Equal(read[1], chunks[2]) {
		t.Fatalf("resumed read from chunk 1 gave %d chunks", len(read))
	}
	if s2, _ := st.salt(); len(s2) != 16 {
		t.Fatal("no salt")
	} else if s3, _ := st.salt(); !bytes.Equal(s2, s3) {
		t.Fatal("salt changed between calls")
	}
}
