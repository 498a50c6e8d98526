package jpeg2000

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
)

// BenchmarkHTDecode decodes the shared HTJ2K streams (Bretagne1, 640x480 RGB)
// with this package and, on the same files, with OpenJPEG's opj_decompress and
// OpenJPH's ojph_expand. The two tools run as processes writing a PPM file, so
// their figures include process start and output (a few milliseconds); each
// runs single-threaded by default. Besides wall time, each reports its CPU time
// per decode (cpu-ms/op), which holds on a loaded machine.
func BenchmarkHTDecode(b *testing.B) {
	for _, name := range []string{"Bretagne1_ht.j2k", "Bretagne1_ht_lossy.j2k"} {
		full := testenv.Shared(b, "data/jpeg2000/htj2k/"+name)
		data, err := os.ReadFile(full)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/go", func(b *testing.B) { benchDecode(b, data, Options{}) })
		b.Run(name+"/go-1worker", func(b *testing.B) { benchDecode(b, data, Options{Workers: 1}) })
		for _, tool := range []struct{ name, bin, in, out string }{
			{"opj_decompress", "opj_decompress", "-i", "-o"},
			{"ojph_expand", "ojph_expand", "-i", "-o"},
		} {
			bin, err := exec.LookPath(tool.bin)
			if err != nil {
				continue
			}
			b.Run(name+"/"+tool.name, func(b *testing.B) {
				out := filepath.Join(b.TempDir(), "out.ppm")
				var cpu time.Duration
				for i := 0; i < b.N; i++ {
					cmd := exec.Command(bin, tool.in, full, tool.out, out)
					if msg, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("%s: %v\n%s", tool.bin, err, msg)
					}
					cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				}
				b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

func benchDecode(b *testing.B, data []byte, opt Options) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	start := processCPU()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(data, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((processCPU()-start).Seconds()*1000/float64(b.N), "cpu-ms/op")
}

// processCPU is this process's user and system time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
