package siteagent

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrPermanent marks a failure that trying again cannot fix: Run returns an
// error wrapping it when the coordinator and this site cannot authenticate
// each other, and a task failing with it is reported at once instead of
// being retried. A Trainer may wrap it too (a model it cannot build).
var ErrPermanent = errors.New("permanent failure")

// permanentError is a failure wrapping ErrPermanent whose message is only
// the cause's, so a reason sent to the coordinator reads naturally.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() []error {
	return []error{ErrPermanent, e.err}
}

// permanent marks err as one that retrying cannot fix.
func permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return permanentError{err}
}

// linkDown reports a failure of the link to the coordinator rather than of
// the task: the coordinator was unreachable, restarted, or closed a stream
// that went quiet. Such a task is tried again (its update, once prepared,
// is kept and resumed) for as long as its round may still be open, and is
// not reported as failed: a report would tell the coordinator the site
// cannot deliver, and end a round that the site can still complete.
func linkDown(err error) bool {
	if err == nil || errors.Is(err, ErrPermanent) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// permanentf is permanent(fmt.Errorf(...)).
func permanentf(format string, args ...any) error { return permanent(fmt.Errorf(format, args...)) }

// Limits on what the agent sends: the coordinator stores and shows these
// strings, so they are bounded here as well as there.
const (
	maxDetail  = 1 << 10 // TaskStatus.detail, Health.data_problem
	maxVersion = 64
)

// bounded returns s without control characters, cut to at most n bytes on a
// rune boundary (with an ellipsis when cut).
func bounded(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := n - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// scrubPaths replaces each occurrence of one of dirs, and the path that
// follows it, with the folder's base name: below a data folder are patient
// folders, whose names must not leave the site.
func scrubPaths(s string, dirs ...string) string {
	for _, d := range dirs {
		d = strings.TrimRight(d, `/\`)
		if len(d) < 2 {
			continue
		}
		var b strings.Builder
		for {
			i := strings.Index(s, d)
			if i < 0 {
				b.WriteString(s)
				break
			}
			b.WriteString(s[:i])
			b.WriteString("'" + baseName(d) + "'")
			rest := s[i+len(d):]
			// Skip the rest of the path: up to a quote, space or separator
			// that cannot be part of it as the error printed it.
			j := strings.IndexFunc(rest, func(r rune) bool {
				return r == '"' || r == '\'' || r == ' ' || r == ':' || r == ',' || r == ')' || r == ']'
			})
			if j < 0 {
				j = len(rest)
			}
			s = rest[j:]
		}
		s = b.String()
	}
	return s
}

func baseName(dir string) string {
	dir = strings.TrimRight(dir, `/\`)
	if i := strings.LastIndexAny(dir, `/\`); i >= 0 {
		return dir[i+1:]
	}
	return dir
}

// detail is the reason sent (and logged) for a failed task: the error's
// message with the site's folders cut to their base names, bounded.
func (a *Agent) detail(err error) string {
	dirs := []string{a.cfg.StateDir}
	if d, ok := a.cfg.Data.(interface{ Folder() string }); ok {
		dirs = append(dirs, d.Folder())
	}
	return bounded(scrubPaths(err.Error(), dirs...), maxDetail)
}
