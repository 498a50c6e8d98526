package fhirr4

import (
	"testing"
	"unicode/utf8"
)

// FuzzServerAnswer feeds arbitrary response bodies to what Deliver does with
// a server's answer: it must not panic, and the reason it keeps is bounded,
// valid UTF-8 and free of control characters (it may reach a log line).
func FuzzServerAnswer(f *testing.F) {
	f.Add([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"bad"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction-response"}`))
	f.Add([]byte("<html>login</html>"))
	f.Add([]byte{0xff, 0xfe, '\n', 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1<<16 {
			return
		}
		reason := serverReason(400, body)
		if len(reason) > maxReasonBytes+len("…") || !utf8.ValidString(reason) {
			t.Fatalf("reason of %d bytes, valid UTF-8 %v", len(reason), utf8.ValidString(reason))
		}
		_ = checkTransactionResponse(200, body)
	})
}

func BenchmarkBundle(b *testing.B) {
	r := classification()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Bundle(r); err != nil {
			b.Fatal(err)
		}
	}
}
