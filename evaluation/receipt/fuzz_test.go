package receipt

import (
	"crypto/ed25519"
	"testing"
)

// FuzzVerify: any bytes given as a signed receipt are refused or verify,
// never panic; whatever verifies is a receipt Sign accepts.
func FuzzVerify(f *testing.F) {
	pub, key, _ := ed25519.GenerateKey(nil)
	good, err := Sign(testReceipt(), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":1,"receipt":{},"alg":"ed25519","signature":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Verify(b, pub)
		if err != nil {
			return
		}
		if _, err := Sign(r, key); err != nil {
			t.Fatalf("a verified receipt cannot be signed again: %v", err)
		}
	})
}
