package jpeg2000

import "sync"

// Tile-component coefficient arrays are the decoder's largest allocations after
// the result itself; reusing them across tiles and images spares the garbage
// collector and the zeroing of fresh memory. They come back cleared.
var (
	intPool   sync.Pool // *[]int32
	floatPool sync.Pool // *[]float32
)

func getInts(n int) []int32 {
	if p, ok := intPool.Get().(*[]int32); ok && cap(*p) >= n {
		s := (*p)[:n]
		clear(s)
		return s
	} else if ok {
		intPool.Put(p)
	}
	return make([]int32, n)
}

func putInts(s []int32) {
	if s != nil {
		intPool.Put(&s)
	}
}

func getFloats(n int) []float32 {
	if p, ok := floatPool.Get().(*[]float32); ok && cap(*p) >= n {
		s := (*p)[:n]
		clear(s)
		return s
	} else if ok {
		floatPool.Put(p)
	}
	return make([]float32, n)
}

func putFloats(s []float32) {
	if s != nil {
		floatPool.Put(&s)
	}
}
