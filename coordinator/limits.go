package coordinator

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bounds on what arrives from outside. A peer's strings are cut to these
// lengths before they reach a log line, an event, an error or the
// database, so one hostile or broken peer cannot bloat the event log or
// break a listing for everyone else.
const (
	maxVersionBytes = 64   // an agent's version string
	maxReasonBytes  = 1024 // a site's failure report, an admin's abort reason
	maxDetailBytes  = 2048 // one event's detail
	maxEchoBytes    = 64   // a peer's string quoted back in an error
	maxMetrics      = 32   // metrics in one upload header
	maxMetricKey    = 64   // bytes of one metric's name
	maxFailures     = 50   // site failures remembered per job (newest kept)
	// maxUploadsPerSite bounds a site's concurrent uploads (an honest agent
	// has one open at a time).
	maxUploadsPerSite = 8
	// maxStreamsPerConn bounds concurrent calls on one connection.
	maxStreamsPerConn = 64

	defaultPageSize = 100
	maxPageSize     = 500
	// maxUnclippedNorm bounds the L2 norm of a plaintext update in a job
	// without clip_norm: far above any honest local-training delta, far
	// below values that overflow the aggregate.
	maxUnclippedNorm = 1e6
)

// bound cuts s to at most n bytes on a rune boundary, marks the cut, and
// replaces control characters, so a peer's text is safe to log and show.
func bound(s string, n int) string {
	cut := false
	if len(s) > n {
		s, cut = s[:n], true
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
	if cut {
		s += "…"
	}
	return s
}

// q quotes a peer's string for an error message, cut to maxEchoBytes.
func q(s string) string { return strconv.Quote(bound(s, maxEchoBytes)) }

// pageSize turns a request's page_size into the size served.
func pageSize(n uint32) int {
	switch {
	case n == 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return int(n)
}

// within runs op and gives up after d, or when ctx ends: a peer that stops
// reading (a blocked Send) costs only its own stream. On a time-out the
// handler returns, gRPC tears the stream down and op, still running,
// returns then; op must touch nothing else after.
func within(ctx context.Context, d time.Duration, what string, op func() error) error {
	_, err := withinValue(ctx, d, what, func() (struct{}, error) { return struct{}{}, op() })
	return err
}

// withinValue is within for an op with a result (a blocked Recv). The
// result travels through the channel, so nothing is shared with an op
// still running after a time-out.
func withinValue[T any](ctx context.Context, d time.Duration, what string, op func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := op()
		done <- result{v, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	var zero T
	select {
	case r := <-done:
		return r.v, r.err
	case <-t.C:
		return zero, status.Errorf(codes.DeadlineExceeded, "%s took longer than %v: the stream was closed", what, d)
	case <-ctx.Done():
		if err := context.Cause(ctx); err != nil && status.Code(err) != codes.Unknown {
			return zero, err
		}
		return zero, status.FromContextError(ctx.Err()).Err()
	}
}
