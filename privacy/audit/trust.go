package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Trust is what a verifier or witness knows in advance about one
// consortium's log: its origin name, the keys that may sign checkpoints
// (log keys, which may also sign records), other keys that may sign
// records, the witnesses' keys, and how many witnesses must cosign.
//
// Its file form, one statement a line, "#" starts a comment:
//
//	origin concord.example.org/audit
//	log coordinator+5f0c3a21+AW4...       (checkpoints and records)
//	signer ingest+0a1b2c3d+AXk...         (records only)
//	witness st-marys+9e8d7c6b+ATt...
//	witness city-general+11223344+AcQ...
//	quorum 2                              (default: every witness listed)
//
// A trust file without witnesses trusts the coordinator alone. Build a
// Trust with NewTrust or ParseTrust; a Trust literal trusts no key.
type Trust struct {
	Origin    string
	Logs      []string // verifier keys
	Signers   []string
	Witnesses []string
	Quorum    int

	logVerifiers     []note.Verifier
	witnessVerifiers []note.Verifier
	signers          map[string]ed25519.PublicKey // key id -> key, logs and signers
}

// NewTrust checks the keys and builds a Trust. A quorum of 0 means every
// witness.
func NewTrust(origin string, logs, signers, witnesses []string, quorum int) (*Trust, error) {
	t := &Trust{Origin: origin, Logs: logs, Signers: signers, Witnesses: witnesses, Quorum: quorum,
		signers: map[string]ed25519.PublicKey{}}
	if err := checkOrigin(origin); err != nil {
		return nil, err
	}
	if len(logs) == 0 {
		return nil, fmt.Errorf("trust: no log key: add a line \"log KEY\" with the coordinator's audit key")
	}
	seen := map[string]string{}
	add := func(role, vkey string) (note.Verifier, error) {
		id, pub, v, err := parseVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("trust: %s: %w", role, err)
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("trust: key %s listed twice (as %s and %s): one key, one role", id, prev, role)
		}
		seen[id] = role
		if role != "witness" {
			t.signers[id] = pub
		}
		return v, nil
	}
	for _, k := range logs {
		v, err := add("log", k)
		if err != nil {
			return nil, err
		}
		t.logVerifiers = append(t.logVerifiers, v)
	}
	for _, k := range signers {
		if _, err := add("signer", k); err != nil {
			return nil, err
		}
	}
	for _, k := range witnesses {
		v, err := add("witness", k)
		if err != nil {
			return nil, err
		}
		t.witnessVerifiers = append(t.witnessVerifiers, v)
	}
	if t.Quorum == 0 {
		t.Quorum = len(witnesses)
	}
	if t.Quorum < 0 || t.Quorum > len(witnesses) {
		return nil, fmt.Errorf("trust: quorum %d, but %d witnesses are listed", t.Quorum, len(witnesses))
	}
	return t, nil
}

func checkOrigin(origin string) error {
	if origin == "" || strings.ContainsAny(origin, "\n\r\t ") || !strings.ContainsFunc(origin, func(r rune) bool { return r > ' ' }) {
		return fmt.Errorf("origin %q: want one word, e.g. concord.example.org/audit", origin)
	}
	return nil
}

// ParseTrust reads the file form shown on Trust.
func ParseTrust(data []byte) (*Trust, error) {
	var origin string
	var logs, signers, witnesses []string
	quorum := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("trust line %d: want \"WORD VALUE\", got %q", n, strings.TrimSpace(line))
		}
		switch f[0] {
		case "origin":
			if origin != "" {
				return nil, fmt.Errorf("trust line %d: a second origin", n)
			}
			origin = f[1]
		case "log":
			logs = append(logs, f[1])
		case "signer":
			signers = append(signers, f[1])
		case "witness":
			witnesses = append(witnesses, f[1])
		case "quorum":
			q, err := strconv.Atoi(f[1])
			if err != nil || q < 1 {
				return nil, fmt.Errorf("trust line %d: quorum %q: want a number of witnesses, at least 1", n, f[1])
			}
			quorum = q
		default:
			return nil, fmt.Errorf("trust line %d: unknown word %q (origin, log, signer, witness, quorum)", n, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	if origin == "" {
		return nil, fmt.Errorf("trust: no origin line: add \"origin NAME\", the log's name in its checkpoints")
	}
	return NewTrust(origin, logs, signers, witnesses, quorum)
}

// ReadTrustFile reads a trust file.
func ReadTrustFile(path string) (*Trust, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseTrust(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Marshal writes t in its file form.
func (t *Trust) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "origin %s\n", t.Origin)
	for _, group := range []struct {
		word string
		keys []string
	}{{"log", t.Logs}, {"signer", t.Signers}, {"witness", t.Witnesses}} {
		for _, k := range group.keys {
			fmt.Fprintf(&b, "%s %s\n", group.word, k)
		}
	}
	if len(t.Witnesses) > 0 {
		fmt.Fprintf(&b, "quorum %d\n", t.Quorum)
	}
	return b.Bytes()
}

func noteID(v note.Verifier) string { return fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()) }
