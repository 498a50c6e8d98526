package pacs

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func multipartBody(parts ...string) (string, []byte) {
	var b bytes.Buffer
	for _, p := range parts {
		fmt.Fprintf(&b, "--XYZ\r\nContent-Type: application/dicom\r\n\r\n%s\r\n", p)
	}
	b.WriteString("--XYZ--\r\n")
	return `multipart/related; type="application/dicom"; boundary=XYZ`, b.Bytes()
}

func TestReadMultipartBounds(t *testing.T) {
	ct, body := multipartBody("aaaa", "bbbbbbbb")
	cases := []struct {
		name, ct      string
		body          []byte
		parts         int
		bytes         int64
		want, wantErr string
	}{
		{"ok", ct, body, 5, 100, "aaaa|bbbbbbbb|", ""},
		{"part too large", ct, body, 5, 6, "", "over the limit of 6 bytes"},
		{"too many parts", ct, body, 1, 100, "", "more than 1 instances"},
		{"not multipart", "application/dicom+json", body, 5, 100, "", "not multipart/related"},
		{"other part type", `multipart/related; type="image/jpeg"; boundary=XYZ`, body, 5, 100, "", "not application/dicom"},
		{"cut in the headers", ct, body[:30], 5, 100, "", "closing boundary"},
		{"cut in a part", ct, body[:len(body)-16], 5, 100, "", "part 2"},
		{"cut before the end", ct, body[:len(body)-9], 5, 100, "", "unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got strings.Builder
			err := readMultipart(tc.ct, bytes.NewReader(tc.body), tc.parts, tc.bytes, func(b []byte) error {
				got.Write(b)
				got.WriteString("|")
				return nil
			})
			if tc.wantErr == "" && (err != nil || got.String() != tc.want) {
				t.Errorf("got %q, %v; want %q", got.String(), err, tc.want)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzReadMultipart: any response is read within its bounds, without panic.
func FuzzReadMultipart(f *testing.F) {
	ct, body := multipartBody("aaaa", "bbbbbbbb")
	f.Add(ct, body)
	f.Add(`multipart/related; boundary=""`, []byte("--\r\n"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		n := 0
		readMultipart(ct, bytes.NewReader(body), 4, 64, func(b []byte) error {
			if len(b) > 64 {
				t.Fatalf("a part of %d bytes passed a bound of 64", len(b))
			}
			n++
			if n > 4 {
				t.Fatalf("%d parts passed a bound of 4", n)
			}
			return nil
		})
	})
}
