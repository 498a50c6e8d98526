package extrainer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestShardCacheEvicts: deploy/trainer/shards.py's cache, bounded to two
// shards and a half, evicts the least recently used shard to take a third;
// a shard that DataHave just reported held counts as recently used, so it
// survives. Costs about 2 s (one Python start).
func TestShardCacheEvicts(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	var ids []string
	for i := range 3 {
		s, err := Shards(blobData(8, 4, 4, uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, s[0].ID))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s[0].writeTo(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		ids = append(ids, s[0].ID)
	}
	size := 0
	if fi, err := os.Stat(filepath.Join(dir, ids[0])); err == nil {
		size = int(fi.Size())
	}
	script := `
import os, sys, time
sys.path.insert(0, sys.argv[1])
import shards
from concord.v1 import trainer_pb2
src, size, ids = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
cache = shards.Cache(os.path.join(src, "cache"), size * 5 // 2)
def put(sid):
    data = open(os.path.join(src, sid), "rb").read()
    cache.put(iter([trainer_pb2.ShardChunk(shard_id=sid, size=len(data), offset=0, data=data, last=True)]))
put(ids[0]); time.sleep(0.05); put(ids[1]); time.sleep(0.05)
assert cache.missing(ids[:2]) == [], "both held"
time.sleep(0.05)
assert cache.missing([ids[0]]) == []  # ids[0] is now the most recently used
time.sleep(0.05)
put(ids[2])
print("missing", " ".join(s[:8] for s in cache.missing(ids)))
`
	cmd := exec.Command(py, "-c", script, filepath.Join("..", "deploy", "trainer"), dir, strconv.Itoa(size), ids[0], ids[1], ids[2])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "missing "+ids[1][:8]; got != want {
		t.Errorf("after a third shard: %q, want %q (the least recently used one evicted)", got, want)
	}
}
