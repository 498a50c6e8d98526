package signenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
)

func TestSignVerify(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []crypto.Signer{ec, ed} {
		alg, sig, err := Sign(k, "ctx a\n", []byte("body"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(k.Public(), alg, "ctx a\n", []byte("body"), sig); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		for name, c := range map[string]struct {
			ctx, body, alg string
		}{"context": {"ctx b\n", "body", alg}, "body": {"ctx a\n", "bodY", alg}, "alg": {"ctx a\n", "body", "none"}} {
			if err := Verify(k.Public(), c.alg, c.ctx, []byte(c.body), sig); !errors.Is(err, ErrSignature) {
				t.Errorf("%s: another %s verifies: %v", alg, name, err)
			}
		}
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, k := range []crypto.Signer{rk, p384} {
		if _, _, err := Sign(k, "c", nil); !errors.Is(err, ErrKey) {
			t.Errorf("%T: %v", k, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	type v struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	var x v
	if err := DecodeStrict([]byte(`{"a":1,"b":"x"}`), &x); err != nil || x.A != 1 {
		t.Fatalf("%+v %v", x, err)
	}
	for _, bad := range []string{`{"b":"x","a":1}`, `{"a":1, "b":"x"}`, `{"a":1,"b":"x"}` + "\n", `{"a":1,"b":"x","c":2}`, `{"a":1.0,"b":"x"}`, ``} {
		if err := DecodeStrict([]byte(bad), &x); !errors.Is(err, ErrEncoding) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
