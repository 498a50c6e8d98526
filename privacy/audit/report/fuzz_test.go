package report

import (
	"bytes"
	"testing"
)

// FuzzExtractAndVerify feeds report files, changed at random, to the
// verifier: it must never panic, and it must never accept a file whose
// report does not verify.
func FuzzExtractAndVerify(f *testing.F) {
	pub, _ := testKey()
	r := signedSample(f)
	for _, format := range formats {
		var buf bytes.Buffer
		if err := Write(&buf, r, format); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("section,item,field,value\r\nsigned_report,part 1 of 1,json_base64,e30=\r\n"))
	f.Add([]byte("%PDF-1.3\n/Type /EmbeddedFile /Length 99999999 /Filter /FlateDecode /Params << /CheckSum <00> /Size 5 >> >>\nstream\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		got, err := ExtractAndVerify(file, pub)
		if got != nil {
			if verr := VerifySignature(got, pub); verr != nil {
				t.Fatalf("returned a report that does not verify (err %v): %v", err, verr)
			}
		}
	})
}
