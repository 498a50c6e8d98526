package aggregation

import "errors"

// Sentinel errors. Callers compare with errors.Is; the wrapped message says
// which input was wrong.
var (
	// ErrLength means vectors that must have the same length do not, or a
	// chunk falls outside the model.
	ErrLength = errors.New("length mismatch")
	// ErrNotFinite means an input held NaN or ±Inf.
	ErrNotFinite = errors.New("value is not finite")
	// ErrWeight means a site weight was zero, negative or not finite.
	ErrWeight = errors.New("invalid weight")
	// ErrEmpty means there is nothing to aggregate yet: no site weight was
	// added, or no updates were given.
	ErrEmpty = errors.New("nothing to aggregate")
	// ErrIncomplete means the chunks added do not cover every coordinate
	// exactly once per site weight added: a chunk is missing or duplicated.
	ErrIncomplete = errors.New("incomplete update")
	// ErrState means persisted state could not be decoded or belongs to
	// another strategy or model size.
	ErrState = errors.New("invalid state")
)
