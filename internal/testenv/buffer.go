package testenv

import (
	"bytes"
	"sync"
)

// Buffer collects what a process or a logger writes while a test reads
// it: safe for concurrent use. With Limit > 0, writes past Limit bytes are
// dropped (a verbose server keeps memory bounded).
type Buffer struct {
	Limit int
	mu    sync.Mutex
	b     bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Limit > 0 && s.b.Len() > s.Limit {
		return len(p), nil
	}
	return s.b.Write(p)
}

// Bytes is a copy of what was written.
func (s *Buffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *Buffer) String() string { return string(s.Bytes()) }

// Tail is the last n bytes written, marked with "…" when cut.
func (s *Buffer) Tail(n int) string {
	out := s.String()
	if len(out) > n {
		out = "…" + out[len(out)-n:]
	}
	return out
}
