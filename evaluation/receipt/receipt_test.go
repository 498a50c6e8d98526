package receipt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/internal/signenv"
)

func testReceipt() Receipt {
	return Receipt{Site: "st-marys", JobID: "7", Round: 3, ModelRole: "global",
		ModelSHA256:  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		DataManifest: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		PipelineHash: "abc123",
		Assessment: evaluation.Assessment{Task: "binary", Examples: 120, Positives: 40, Threshold: 0.5,
			Metrics:   map[string]evaluation.Estimate{"auc": {Value: 0.91, Lower: 0.85, Upper: 0.95}, "sensitivity": {Value: 0.8, Lower: 0.65, Upper: 0.9}},
			Confusion: map[string]int{"tp": 32, "fp": 9, "tn": 71, "fn": 8},
			Subgroups: []evaluation.Subgroup{{Field: "sex", Value: "F", Examples: 60, Metrics: map[string]evaluation.Estimate{"auc": {Value: 0.9, Lower: 0.8, Upper: 0.96}}},
				{Field: "sex", Value: "O", Suppressed: true}}},
		Time: time.Date(2026, 11, 28, 1, 0, 0, 123, time.UTC)}
}

// TestSignVerify: a receipt signed with an ECDSA P-256 or Ed25519 key
// verifies with its public key and returns what was signed; another key,
// or any single changed byte of the envelope, fails.
func TestSignVerify(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		name  string
		key   crypto.Signer
		other crypto.PublicKey
	}{{"ecdsa", ec, ec2.Public()}, {"ed25519", ed, ec.Public()}} {
		t.Run(c.name, func(t *testing.T) {
			data, err := Sign(testReceipt(), c.key)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Verify(data, c.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			want := testReceipt()
			if !r.Time.Equal(want.Time) || r.ModelSHA256 != want.ModelSHA256 || r.Assessment.Metrics["auc"] != want.Assessment.Metrics["auc"] ||
				len(r.Assessment.Subgroups) != 2 || !r.Assessment.Subgroups[1].Suppressed {
				t.Fatalf("verified receipt %+v", r)
			}
			if _, err := Verify(data, c.other); !errors.Is(err, ErrReceipt) {
				t.Fatalf("verified with another key: %v", err)
			}
			for i := range data {
				for _, x := range []byte{0x01, 0x20} {
					bad := bytes.Clone(data)
					bad[i] ^= x
					if _, err := Verify(bad, c.key.Public()); !errors.Is(err, ErrReceipt) {
						t.Fatalf("byte %d (%q) xor %#x: %v", i, data[i], x, err)
					}
				}
			}
		})
	}
}

// TestDomainSeparated: the context string binds the signature to this
// kind of statement; the same body signed without it does not verify.
func TestDomainSeparated(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	data, err := Sign(testReceipt(), ec)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(envelope{Format: Format, Receipt: env.Receipt, Alg: env.Alg, Signature: sign(t, ec, env.Receipt)})
	if _, err := Verify(forged, ec.Public()); !errors.Is(err, ErrReceipt) {
		t.Fatalf("a signature of the bare body verifies: %v", err)
	}
}

func sign(t *testing.T, k *ecdsa.PrivateKey, body []byte) []byte {
	t.Helper()
	sig, err := k.Sign(rand.Reader, sha(body), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func sha(b []byte) []byte { h := crypto.SHA256.New(); h.Write(b); return h.Sum(nil) }

func TestRefusals(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, k := range []crypto.Signer{rsaKey, p384} {
		if _, err := Sign(testReceipt(), k); err == nil {
			t.Errorf("signed with a %T", k)
		}
	}
	for _, c := range []struct {
		name string
		edit func(*Receipt)
	}{
		{"no site", func(r *Receipt) { r.Site = "" }},
		{"no job", func(r *Receipt) { r.JobID = "" }},
		{"no time", func(r *Receipt) { r.Time = time.Time{} }},
		{"short sha", func(r *Receipt) { r.ModelSHA256 = "abcd" }},
		{"upper-case sha", func(r *Receipt) { r.ModelSHA256 = strings.ToUpper(r.ModelSHA256) }},
		{"negative round", func(r *Receipt) { r.Round = -1 }},
		{"negative examples", func(r *Receipt) { r.Assessment.Examples = -1 }},
		{"metric above 1", func(r *Receipt) { r.Assessment.Metrics["auc"] = evaluation.Estimate{Value: 1.5, Upper: 2} }},
		{"metric NaN", func(r *Receipt) { r.Assessment.Metrics["f1"] = evaluation.Estimate{Value: math.NaN()} }},
		{"subgroup metric negative", func(r *Receipt) {
			r.Assessment.Subgroups[0].Metrics["auc"] = evaluation.Estimate{Value: -0.1}
		}},
	} {
		r := testReceipt()
		c.edit(&r)
		if _, err := Sign(r, ec); !errors.Is(err, ErrReceipt) {
			t.Errorf("%s: signed (%v)", c.name, err)
		}
	}
	for _, junk := range []string{"", "{}", "null", `{"format":1}`, `{"format":2,"receipt":{},"alg":"ed25519","signature":""}`} {
		if _, err := Verify([]byte(junk), ec.Public()); !errors.Is(err, ErrReceipt) {
			t.Errorf("%q: %v", junk, err)
		}
	}
}

// TestOversize: a receipt over MaxSize is refused before it is parsed.
func TestOversize(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	data, err := Sign(testReceipt(), ec)
	if err != nil {
		t.Fatal(err)
	}
	big := append(bytes.Clone(data), bytes.Repeat([]byte(" "), MaxSize)...)
	if _, err := Verify(big, ec.Public()); !errors.Is(err, ErrReceipt) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("oversize: %v", err)
	}
	r := testReceipt()
	r.PipelineHash = strings.Repeat("x", MaxSize)
	if _, err := Sign(r, ec); err == nil {
		t.Fatal("signed a receipt no verifier accepts")
	}
}

// TestNonCanonical: the same values spelled differently (spacing, key
// order) are refused, even with a valid signature over the receipt body.
func TestNonCanonical(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	data, err := Sign(testReceipt(), ec)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	var spaced bytes.Buffer
	if err := json.Indent(&spaced, data, "", " "); err != nil {
		t.Fatal(err)
	}
	// The same receipt with its keys in another order, validly signed and
	// in a canonical envelope: refused all the same.
	var m map[string]any
	if err := json.Unmarshal(env.Receipt, &m); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(m) // map keys sorted: not the struct's order
	alg, sig, err := signenv.Sign(ec, context, body)
	if err != nil {
		t.Fatal(err)
	}
	resigned, _ := json.Marshal(envelope{Format: Format, Receipt: body, Alg: alg, Signature: sig})
	for name, b := range map[string][]byte{"indented": spaced.Bytes(), "trailing newline": append(bytes.Clone(data), '\n'), "reordered body": resigned} {
		if _, err := Verify(b, ec.Public()); !errors.Is(err, ErrReceipt) || !strings.Contains(err.Error(), "canonical") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
