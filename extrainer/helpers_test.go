package extrainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testtrainer"
)

// testManifest builds the "cnn" layout manifest (concord.cnn/2, with
// GroupNorm) of the shared contract
// (independently of package learning) and its He-normal initial weights,
// drawn in layout order from PCG(seed, 0x5eed).
func testManifest(c, h, w, classes, width int, seed uint64) ([]byte, []float32) {
	type param struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"`
		Offset int    `json:"offset"`
		Size   int    `json:"size"`
	}
	shapes := []struct {
		name  string
		shape []int
	}{
		{"stem.conv.weight", []int{width, c, 3, 3}}, {"stem.conv.bias", []int{width}},
		{"stem.norm.weight", []int{width}}, {"stem.norm.bias", []int{width}},
		{"block1.conv1.weight", []int{width, width, 3, 3}}, {"block1.conv1.bias", []int{width}},
		{"block1.norm1.weight", []int{width}}, {"block1.norm1.bias", []int{width}},
		{"block1.conv2.weight", []int{width, width, 3, 3}}, {"block1.conv2.bias", []int{width}},
		{"block1.norm2.weight", []int{width}}, {"block1.norm2.bias", []int{width}},
		{"block2.conv1.weight", []int{2 * width, width, 3, 3}}, {"block2.conv1.bias", []int{2 * width}},
		{"block2.norm1.weight", []int{2 * width}}, {"block2.norm1.bias", []int{2 * width}},
		{"block2.conv2.weight", []int{2 * width, 2 * width, 3, 3}}, {"block2.conv2.bias", []int{2 * width}},
		{"block2.norm2.weight", []int{2 * width}}, {"block2.norm2.bias", []int{2 * width}},
		{"block2.shortcut.weight", []int{2 * width, width, 1, 1}}, {"block2.shortcut.bias", []int{2 * width}},
		{"head.fc1.weight", []int{4 * width, 2 * width}}, {"head.fc1.bias", []int{4 * width}},
		{"head.fc2.weight", []int{classes, 4 * width}}, {"head.fc2.bias", []int{classes}},
	}
	var params []param
	var weights []float32
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, s := range shapes {
		size := 1
		for _, d := range s.shape {
			size *= d
		}
		params = append(params, param{Name: s.name, Shape: s.shape, Offset: len(weights), Size: size})
		if len(s.shape) == 1 { // biases and GroupNorm shifts start at zero, scales at one
			v := float32(0)
			if strings.Contains(s.name, ".norm") && strings.HasSuffix(s.name, ".weight") {
				v = 1
			}
			for range size {
				weights = append(weights, v)
			}
			continue
		}
		fanIn := size / s.shape[0]
		std := math.Sqrt(2 / float64(fanIn))
		for range size {
			weights = append(weights, float32(rng.NormFloat64()*std))
		}
	}
	m, err := json.Marshal(map[string]any{
		"version": "concord.cnn/2", "arch": "cnn", "input": []int{c, h, w}, "classes": classes,
		"width": width, "params": params, "total": len(weights),
	})
	if err != nil {
		panic(err)
	}
	return m, weights
}

// blobs returns a learnable two-class image set: class 1 images hold a
// bright square somewhere on a noisy background, class 0 images do not.
func blobs(n, h, w int, seed uint64) (images, labels []byte) {
	rng := rand.New(rand.NewPCG(seed, 2))
	images = make([]byte, n*h*w)
	labels = make([]byte, n)
	for i := range n {
		img := images[i*h*w : (i+1)*h*w]
		for p := range img {
			img[p] = byte(rng.IntN(70))
		}
		if i%2 == 1 {
			labels[i] = 1
			side := max(2, h/5)
			y0, x0 := rng.IntN(h-side+1), rng.IntN(w-side+1)
			for y := y0; y < y0+side; y++ {
				for x := x0; x < x0+side; x++ {
					img[y*w+x] = byte(190 + rng.IntN(60))
				}
			}
		}
	}
	return images, labels
}

// python returns Debian's python3 when it has what the reference trainer
// needs (apt-get install python3-torch python3-grpcio python3-protobuf
// python3-numpy); in CI a missing piece fails the test, elsewhere it skips.
func python(t testing.TB) string {
	t.Helper()
	return testenv.Python(t, "torch", "grpc", "numpy", "google.protobuf")
}

// The tests share one trainer process: starting PyTorch costs seconds.
var shared struct {
	mu      sync.Mutex
	dataDir string // the trainer's data root; tests write their .npz here
	addr    string
	cmd     *exec.Cmd
	stderr  syncBuffer
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "extrainer-test-")
	if err != nil {
		panic(err)
	}
	shared.dataDir = dir
	// Keep the Python children from writing __pycache__ into the source tree.
	os.Setenv("PYTHONDONTWRITEBYTECODE", "1")
	code := m.Run()
	stop(shared.cmd)
	os.RemoveAll(dir)
	os.Exit(code)
}

// trainer returns the address of deploy/trainer/trainer.py serving on a
// free loopback port with shared.dataDir as its data root, starting it on
// first use.
func trainer(t testing.TB) string {
	t.Helper()
	py := python(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trainer stderr so far:\n%s", shared.stderr.String())
		}
	})
	if shared.addr != "" {
		return shared.addr
	}
	cmd, addr, err := launch(py, &shared.stderr, "--listen", "127.0.0.1:0", "--data-root", shared.dataDir,
		"--shard-cache", filepath.Join(shared.dataDir, "shards"))
	shared.cmd = cmd
	if err != nil {
		t.Fatal(err)
	}
	shared.addr = addr
	return addr
}

// launch starts "trainer.py serve" on the CPU, two threads, with extra
// arguments, and waits for the line that reports its address.
func launch(py string, stderr *syncBuffer, args ...string) (*exec.Cmd, string, error) {
	cmd, addr, err := testtrainer.Launch(py, stderr, append([]string{"--threads", "2"}, args...)...)
	if err != nil {
		err = fmt.Errorf("%w; stderr:\n%s", err, stderr.String())
	}
	return cmd, addr, err
}

// stop ends a trainer process.
func stop(cmd *exec.Cmd) { testtrainer.Stop(cmd) }

// writeData writes a MedMNIST-format .npz of n h x w blob images into the
// trainer's data root and returns its name there.
func writeData(t testing.TB, name string, n, h, w int, seed uint64) string {
	t.Helper()
	imgs, labels := blobs(n, h, w, seed)
	if err := writeNPZ(filepath.Join(shared.dataDir, name), map[string]npyArray{
		"train_images": {shape: []int{n, h, w}, data: imgs},
		"train_labels": {shape: []int{n, 1}, data: labels},
	}); err != nil {
		t.Fatal(err)
	}
	return name
}

// syncBuffer collects a trainer's stderr.
type syncBuffer = testenv.Buffer

func dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// long skips tests that start extra PyTorch processes or train on real data
// unless CONCORD_LONG_TESTS is set (CI sets it), so that a plain go test of
// this package stays well under a minute on a busy laptop.
func long(t *testing.T) {
	t.Helper()
	if testing.Short() || os.Getenv("CONCORD_LONG_TESTS") == "" {
		t.Skip("long test: set CONCORD_LONG_TESTS=1 to run it")
	}
}

// weightGap compares two trainings that started from w0: worst is the
// largest difference between their weights a and b, moved the largest
// change a made from w0 (how much the comparison can prove).
func weightGap(a, b, w0 []float32) (worst, moved float64) {
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
		moved = math.Max(moved, math.Abs(float64(a[i]-w0[i])))
	}
	return worst, moved
}

// checkTrained fails unless the trainer returned a vector of the global
// model's length in which at least half the weights moved.
func checkTrained(t *testing.T, got, global []float32) {
	t.Helper()
	if len(got) != len(global) {
		t.Fatalf("got %d weights, manifest total %d", len(got), len(global))
	}
	changed := 0
	for i := range global {
		if got[i] != global[i] {
			changed++
		}
	}
	if changed < len(global)/2 {
		t.Errorf("only %d of %d weights changed", changed, len(global))
	}
}
