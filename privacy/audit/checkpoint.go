package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a tree state: the log's origin, its size and its root hash.
// Signed, it is a note (golang.org/x/mod/sumdb/note) whose text is
//
//	<origin>\n<size, decimal>\n<base64 root>\n
//
// the checkpoint body of the transparency-dev tlog format, followed by a
// blank line and one "— name base64(keyhash||signature)" line per signer:
// the log key's first, then the witnesses' cosignatures.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// Errors of checkpoints and witnessing. Messages name the details; test
// with errors.Is.
var (
	ErrCheckpointSignature = errors.New("checkpoint not signed by a trusted log key")
	ErrCosignature         = errors.New("witness cosignature invalid")
	ErrQuorum              = errors.New("too few witness cosignatures")
	ErrOrigin              = errors.New("checkpoint is for another log")
	ErrTruncated           = errors.New("log is smaller than a checkpoint already seen")
	ErrInconsistent        = errors.New("log history rewritten")
	ErrMalformedCheckpoint = errors.New("malformed checkpoint")
)

// Text is the checkpoint's note text.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

func (c Checkpoint) String() string {
	return fmt.Sprintf("%s at size %d, root %s", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

func parseCheckpointText(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	// Extension lines after the root are allowed by the tlog format; this
	// log writes none and signs none, so it refuses them rather than
	// ignoring signed text.
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want three lines (origin, size, root)", ErrMalformedCheckpoint)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	size, err := strconv.ParseUint(strings.TrimSuffix(lines[1], "\n"), 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != strings.TrimSuffix(lines[1], "\n") {
		return Checkpoint{}, fmt.Errorf("%w: size %q", ErrMalformedCheckpoint, strings.TrimSuffix(lines[1], "\n"))
	}
	root, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(root) != 32 {
		return Checkpoint{}, fmt.Errorf("%w: root is not a base64 SHA-256 hash", ErrMalformedCheckpoint)
	}
	if err := checkOrigin(origin); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// SignCheckpoint signs c with the log key k.
func SignCheckpoint(c Checkpoint, k *Key) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.Text()}, k.signer)
}

// OpenCheckpoint verifies a signed checkpoint against t: signed by one of
// t's log keys, for t's origin, and every cosignature of a known witness
// valid. It returns the checkpoint and the ids ("name+hash") of the
// witnesses that cosigned it; it does not apply the quorum (see
// CheckQuorum). Signatures by keys t does not know are ignored.
func OpenCheckpoint(signed []byte, t *Trust) (Checkpoint, []string, error) {
	n, err := note.Open(signed, note.VerifierList(t.logVerifiers...))
	if err != nil {
		return Checkpoint{}, nil, describeNoteError(err, signed)
	}
	c, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != t.Origin {
		return Checkpoint{}, nil, fmt.Errorf("%w: it names %q, the trust file %q", ErrOrigin, c.Origin, t.Origin)
	}
	var cosigners []string
	for _, w := range t.witnessVerifiers {
		_, err := note.Open(signed, note.VerifierList(w))
		var unverified *note.UnverifiedNoteError
		switch {
		case err == nil:
			cosigners = append(cosigners, noteID(w))
		case errors.As(err, &unverified):
		default:
			return Checkpoint{}, nil, fmt.Errorf("%w: %s's cosignature is not over this checkpoint (%s): it signed another tree state",
				ErrCosignature, w.Name(), c)
		}
	}
	return c, cosigners, nil
}

// CheckQuorum reports whether cosigners (from OpenCheckpoint) meet t's quorum.
func (t *Trust) CheckQuorum(c Checkpoint, cosigners []string) error {
	if len(cosigners) >= t.Quorum {
		return nil
	}
	var missing []string
	for _, w := range t.witnessVerifiers {
		if !slices.Contains(cosigners, noteID(w)) {
			missing = append(missing, w.Name())
		}
	}
	return fmt.Errorf("%w: checkpoint at size %d has %d of the %d required (missing: %s)",
		ErrQuorum, c.Size, len(cosigners), t.Quorum, strings.Join(missing, ", "))
}

func describeNoteError(err error, signed []byte) error {
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		var names []string
		for _, s := range unverified.Note.UnverifiedSigs {
			names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
		}
		return fmt.Errorf("%w: it is signed by %s, which the trust list does not name (another consortium's log, or a replaced key)",
			ErrCheckpointSignature, strings.Join(names, ", "))
	case errors.As(err, &invalid):
		return fmt.Errorf("%w: the signature by %s+%08x does not match the checkpoint text", ErrCheckpointSignature, invalid.Name, invalid.Hash)
	default:
		return fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
}

// sigLines returns the signature lines of a signed note, each ending in "\n".
func sigLines(signed []byte) (text []byte, lines [][]byte, err error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: no signature block", ErrMalformedCheckpoint)
	}
	text, rest := signed[:i+1], signed[i+2:]
	for len(rest) > 0 {
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return nil, nil, fmt.Errorf("%w: unterminated signature line", ErrMalformedCheckpoint)
		}
		lines = append(lines, rest[:j+1])
		rest = rest[j+1:]
	}
	return text, lines, nil
}

// AddCosignatures returns the signed checkpoint with the cosignature lines
// (from Witness.Update) appended, each once. It checks no signature: the
// verifier does.
func AddCosignatures(signed []byte, cosigs ...[]byte) ([]byte, error) {
	text, lines, err := sigLines(signed)
	if err != nil {
		return nil, err
	}
	for _, c := range cosigs {
		for _, l := range bytes.SplitAfter(c, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			if !bytes.HasPrefix(l, []byte("— ")) || l[len(l)-1] != '\n' {
				return nil, fmt.Errorf("%w: a cosignature is not a signature line", ErrMalformedCheckpoint)
			}
			if !slices.ContainsFunc(lines, func(x []byte) bool { return bytes.Equal(x, l) }) {
				lines = append(lines, l)
			}
		}
	}
	out := append(bytes.Clone(text), '\n')
	for _, l := range lines {
		out = append(out, l...)
	}
	return out, nil
}
