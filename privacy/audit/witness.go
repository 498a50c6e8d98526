package audit

import (
	"bytes"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Witness is a site's guard against a rewritten log. It keeps the last
// checkpoint it cosigned and cosigns a new one only if the new tree
// extends the old: never a smaller tree, never a different tree of the
// same size, never one the consistency proof does not connect.
//
// The caller persists State after every successful Update and before it
// sends the cosignature: a witness that forgets what it signed can be
// shown a rewritten history.
type Witness struct {
	key   *Key
	trust *Trust
	state []byte
	last  Checkpoint
}

// NewWitness returns a witness signing with k, trusting checkpoints signed
// by t's log keys, starting from state (a previous State(), or nil for a
// witness that has seen nothing yet).
func NewWitness(k *Key, t *Trust, state []byte) (*Witness, error) {
	w := &Witness{key: k, trust: t}
	if len(state) > 0 {
		c, _, err := OpenCheckpoint(state, t)
		if err != nil {
			return nil, fmt.Errorf("witness state: %w", err)
		}
		w.state, w.last = append([]byte{}, state...), c
	}
	return w, nil
}

// State is the last checkpoint cosigned, to persist; nil before the first.
func (w *Witness) State() []byte { return w.state }

// Last is the last checkpoint cosigned (zero before the first).
func (w *Witness) Last() Checkpoint { return w.last }

// Update checks signed against the last cosigned checkpoint with
// consistency, the proof from the last size to the new one
// (Log.ConsistencyProof), and returns this witness's cosignature line, to
// add with AddCosignatures. On error nothing changes.
func (w *Witness) Update(signed []byte, consistency [][]byte) ([]byte, error) {
	c, _, err := OpenCheckpoint(signed, w.trust)
	if err != nil {
		return nil, err
	}
	old := w.last
	switch {
	case w.state == nil:
		// First checkpoint: nothing to be consistent with.
	case c.Size < old.Size:
		return nil, fmt.Errorf("%w: offered size %d, already cosigned size %d", ErrTruncated, c.Size, old.Size)
	case c.Size == old.Size:
		if !bytes.Equal(c.Root, old.Root) {
			return nil, fmt.Errorf("%w: a second tree of size %d with another root (a split view or a rewrite)", ErrInconsistent, c.Size)
		}
	default:
		if err := proof.VerifyConsistency(hasher, old.Size, c.Size, consistency, old.Root, c.Root); err != nil {
			return nil, fmt.Errorf("%w: size %d does not extend the cosigned size %d: %v", ErrInconsistent, c.Size, old.Size, err)
		}
	}
	cosigned, err := note.Sign(&note.Note{Text: c.Text()}, w.key.signer)
	if err != nil {
		return nil, err
	}
	_, lines, err := sigLines(cosigned)
	if err != nil || len(lines) != 1 {
		return nil, fmt.Errorf("cosign: %v", err)
	}
	w.state, w.last = append([]byte{}, signed...), c
	return lines[0], nil
}
