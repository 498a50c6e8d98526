package report

import (
	"bytes"
	"testing"
)

// FuzzExtract feeds report files, changed at random, to the part of
// ExtractAndVerify that parses outside input (finding the signed data in
// each format, decoding it, checking its signature): it must never panic
// nor read without bound. The comparison with a fresh rendering is left
// out: it is not a parser, and rendering a PDF per input would make the
// fuzzer crawl.
func FuzzExtract(f *testing.F) {
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
	f.Add([]byte("%PDF-1.3\n(concord-report.json)/Type /EmbeddedFile /Length 99999999 /Filter /FlateDecode /Params << /CheckSum <00> /Size 5 >> >>\nstream\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		format, signed, err := extract(file)
		if err != nil {
			return
		}
		if len(signed) > maxSigned {
			t.Fatalf("%s: %d bytes of signed data, over the bound", format, len(signed))
		}
		got, err := decode(signed)
		if err != nil {
			return
		}
		_ = VerifySignature(got, pub)
	})
}
