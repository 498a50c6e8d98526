//go:build race

package sim

// raceDetector: the race detector slows lattigo's key generation several
// fold, so tests with tight round deadlines give it more time.
const raceDetector = true
