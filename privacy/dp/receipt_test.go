package dp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"
)

func testReceipt() Receipt {
	return Receipt{Site: "st-marys", JobID: "7", Round: 2, Level: Record, Mechanism: MechanismSubsampledGaussian,
		NoiseMultiplier: 1.1, SampleRate: 0.032, Steps: 31, Delta: 1e-5, EpsilonSpent: 0.83,
		Budget: Budget{Level: Record, Epsilon: 8, Delta: 1e-5}, Accountant: AccountantVersion,
		UploadSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Time: time.Date(2026, 11, 27, 10, 0, 0, 123, time.UTC)}
}

// TestReceiptSignVerify: a receipt signed with an ECDSA P-256 or Ed25519
// key verifies with its public key, returns what was signed, and fails
// with another key, another key type, or after any single byte of the
// envelope is changed.
func TestReceiptSignVerify(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		name  string
		key   crypto.Signer
		other crypto.PublicKey
	}{{"ecdsa", ec, ec2.Public()}, {"ed25519", ed, ec.Public()}} {
		t.Run(c.name, func(t *testing.T) {
			data, err := SignReceipt(testReceipt(), c.key)
			if err != nil {
				t.Fatal(err)
			}
			r, err := VerifyReceipt(data, c.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if !r.Time.Equal(testReceipt().Time) || r.EpsilonSpent != 0.83 || r.UploadSHA256 != testReceipt().UploadSHA256 || r.Budget.Epsilon != 8 {
				t.Fatalf("verified receipt %+v", r)
			}
			if _, err := VerifyReceipt(data, c.other); !errors.Is(err, ErrReceipt) {
				t.Fatalf("verified with another key: %v", err)
			}
			for i := range data {
				for _, x := range []byte{0x01, 0x20, 0x80} {
					bad := append([]byte(nil), data...)
					bad[i] ^= x
					if _, err := VerifyReceipt(bad, c.key.Public()); err == nil {
						t.Fatalf("byte %d (%q) xor %#x: still verifies", i, data[i], x)
					}
				}
			}
		})
	}
}

// TestCountersign: the coordinator's countersignature verifies with its
// key, and both signatures are needed.
func TestCountersign(t *testing.T) {
	site, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	coordPub, coord, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	data, err := SignReceipt(testReceipt(), site)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyCountersigned(data, site.Public(), coordPub); !errors.Is(err, ErrReceipt) {
		t.Fatalf("a receipt without countersignature: %v", err)
	}
	cs, err := Countersign(data, coord, "audit-1")
	if err != nil {
		t.Fatal(err)
	}
	r, kid, err := VerifyCountersigned(cs, site.Public(), coordPub)
	if err != nil || kid != "audit-1" || r.JobID != "7" {
		t.Fatalf("countersigned: %+v %q %v", r, kid, err)
	}
	if _, err := VerifyReceipt(cs, site.Public()); err != nil {
		t.Fatalf("the site's signature of a countersigned receipt: %v", err)
	}
	if _, _, err := VerifyCountersigned(cs, site.Public(), otherPub); !errors.Is(err, ErrReceipt) {
		t.Fatalf("countersignature verified with another key: %v", err)
	}
	if _, err := Countersign(cs, coord, "audit-1"); err == nil {
		t.Fatal("countersigned twice")
	}
	for i := range cs {
		bad := append([]byte(nil), cs...)
		bad[i] ^= 0x01
		if _, _, err := VerifyCountersigned(bad, site.Public(), coordPub); err == nil {
			t.Fatalf("byte %d flipped: still verifies", i)
		}
	}
}

func TestReceiptRefusals(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := SignReceipt(testReceipt(), rsaKey); !errors.Is(err, ErrInvalid) {
		t.Errorf("RSA key: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := SignReceipt(testReceipt(), p384); !errors.Is(err, ErrInvalid) {
		t.Errorf("P-384 key: %v", err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r := testReceipt()
	r.JobID = ""
	if _, err := SignReceipt(r, ec); !errors.Is(err, ErrInvalid) {
		t.Errorf("no job id: %v", err)
	}
	for _, junk := range []string{"", "{}", "null", `{"format":1}`} {
		if _, err := VerifyReceipt([]byte(junk), ec.Public()); err == nil {
			t.Errorf("%q verifies", junk)
		}
	}
}
