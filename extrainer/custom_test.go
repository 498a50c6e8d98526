package extrainer

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCustomPython runs deploy/trainer/custom_test.py: the hash is checked
// before a module is imported, parameters must match the manifest exactly,
// buffers are refused, and `trainer.py layout` prints the pin and layout.
// About 4 s on one core.
func TestCustomPython(t *testing.T) {
	runTrainerScript(t, "custom_test.py")
}

// runTrainerScript runs one of deploy/trainer's Python test scripts with
// the trainer's Python and fails with its output if it fails.
func runTrainerScript(t *testing.T, name string) {
	t.Helper()
	py := python(t)
	script, err := filepath.Abs(filepath.Join("..", "deploy", "trainer", name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}
