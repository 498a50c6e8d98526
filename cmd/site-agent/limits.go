package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/concord-fl/concord/internal/bytesize"
	"github.com/concord-fl/concord/learning"
)

// limitsFile is agent.yaml's limits: what a job's model may ask of this
// site's machine (site-agent/limits.go checks each training task).
type limitsFile struct {
	MaxParams int64 `yaml:"max_params"`
	// MaxTrainingMemory bounds the memory training takes at the job's batch
	// size. Unset, with the built-in trainer: three quarters of this
	// machine's memory. With an external trainer it has no default (the
	// agent cannot see the GPU node's memory): set it to the node's.
	MaxTrainingMemory   bytesize.Size `yaml:"max_training_memory"`
	MaxGFLOPsPerExample float64       `yaml:"max_gflops_per_example"`
}

// modelLimits converts the limits section; memTotal is this machine's
// memory in bytes (0 if unknown).
func (fc fileConfig) modelLimits(memTotal int64) (learning.Limits, error) {
	l := fc.Limits
	if g := l.MaxGFLOPsPerExample; g < 0 || g > 1e6 || math.IsNaN(g) {
		return learning.Limits{}, fmt.Errorf("limits.max_gflops_per_example %g is not in (0, 1000000]", g)
	}
	if l.MaxParams < 0 {
		return learning.Limits{}, fmt.Errorf("limits.max_params %d must not be negative", l.MaxParams)
	}
	lim := learning.Limits{MaxParams: l.MaxParams, MaxTrainingBytes: int64(l.MaxTrainingMemory), MaxFLOPsPerExample: int64(l.MaxGFLOPsPerExample * 1e9)}
	if lim.MaxTrainingBytes == 0 && fc.Trainer.External == "" {
		lim.MaxTrainingBytes = memTotal / 4 * 3
	}
	return lim, nil
}

// machineMemory is MemTotal from /proc/meminfo, 0 where there is none.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
