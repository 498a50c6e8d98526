//go:build !unix

package learning

func cpuSeconds() float64  { return 0 }
func loadAverage() float64 { return 0 }
