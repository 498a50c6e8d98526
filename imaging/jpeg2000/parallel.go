package jpeg2000

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// workers is the number of goroutines to decode with: Options.Workers, or
// GOMAXPROCS when that is 0 or less.
func (o Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return max(1, runtime.GOMAXPROCS(0))
}

// forEach calls fn(w, i) for i in [0, n) on at most workers goroutines, w being the
// goroutine's number in [0, workers) (for per-goroutine scratch state). Jobs are
// taken in index order; after an error no further job starts, and the error of the
// lowest index is returned: all lower jobs had already started, so it is the error
// a sequential loop would have returned.
func forEach(n, workers int, fn func(w, i int) error) error {
	workers = min(workers, n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			if err := fn(0, i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next  atomic.Int64
		stop  atomic.Bool
		mu    sync.Mutex
		errAt = n
		err   error
		wg    sync.WaitGroup
	)
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if e := fn(w, i); e != nil {
					mu.Lock()
					if i < errAt {
						errAt, err = i, e
					}
					mu.Unlock()
					stop.Store(true)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return err
}
