package report

import (
	"bytes"
	"compress/zlib"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Format is one of the four file formats a report is written in.
type Format string

const (
	FormatJSON Format = "json"
	FormatCSV  Format = "csv"
	FormatHTML Format = "html"
	FormatPDF  Format = "pdf"
)

// Write writes r in format f.
func Write(w io.Writer, r *Report, f Format) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, r)
	case FormatCSV:
		return WriteCSV(w, r)
	case FormatHTML:
		return WriteHTML(w, r)
	case FormatPDF:
		return WritePDF(w, r)
	}
	return fmt.Errorf("unknown report format %q: use json, csv, html or pdf", f)
}

// maxSigned bounds the signed data read from a file (and inflated from a
// PDF), so a hostile file cannot exhaust memory.
const maxSigned = 64 << 20

// ExtractAndVerify reads a report file in any of the four formats, finds
// the signed report in it and verifies its signature with pub. It then
// renders the report again and compares it with the file, so that a change
// to what the file shows (a number edited in the PDF or the HTML) is found
// even when the embedded data is intact.
//
// Errors: [ErrNotReport] when the file holds no report; [ErrUnsigned] or
// [ErrBadSignature] when the signed data does not verify, with a nil
// report. When the signed data verifies but the visible content differs
// (the file was edited, or written by another version of Concord), it
// returns the verified report together with an error wrapping
// [ErrVisibleMismatch]: the report returned is trustworthy, the file's
// pages are not.
func ExtractAndVerify(file []byte, pub ed25519.PublicKey) (*Report, error) {
	format, signed, err := extract(file)
	if err != nil {
		return nil, err
	}
	r, err := decode(signed)
	if err != nil {
		return nil, fmt.Errorf("%s report: %w", format, err)
	}
	if err := VerifySignature(r, pub); err != nil {
		return nil, fmt.Errorf("%s report: %w", format, err)
	}
	var again bytes.Buffer
	if format == FormatJSON {
		err = json.Compact(&again, file)
		if err == nil {
			signed, _ = json.Marshal(r)
			file = again.Bytes()
			again.Reset()
			again.Write(signed)
		}
	} else {
		err = Write(&again, r, format)
	}
	if err != nil {
		return r, fmt.Errorf("%s report: render again to compare: %w", format, err)
	}
	if !bytes.Equal(again.Bytes(), file) {
		return r, fmt.Errorf("%s report: %w: the signed data is intact; trust it (export it as JSON), not the pages of this file", format, ErrVisibleMismatch)
	}
	return r, nil
}

func decode(b []byte) (*Report, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	// A field the signature does not cover must not be shown as if it did.
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: signed data is not a report: %v", ErrNotReport, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the report", ErrNotReport)
	}
	return &r, nil
}

// extract finds the format of file and the signed JSON inside it.
func extract(file []byte) (Format, []byte, error) {
	if len(file) > maxSigned {
		return "", nil, fmt.Errorf("%w: file is larger than %d MiB", ErrNotReport, maxSigned>>20)
	}
	trimmed := bytes.TrimLeft(file, " \t\r\n\xef\xbb\xbf")
	switch {
	case bytes.HasPrefix(trimmed, []byte("%PDF-")):
		b, err := extractPDF(file)
		return FormatPDF, b, err
	case bytes.HasPrefix(trimmed, []byte("{")):
		return FormatJSON, file, nil
	case bytes.Contains(file, []byte(htmlScriptOpen)):
		b, err := extractHTML(file)
		return FormatHTML, b, err
	case bytes.HasPrefix(trimmed, []byte("section,item,field,value")):
		b, err := extractCSV(file)
		return FormatCSV, b, err
	}
	return "", nil, fmt.Errorf("%w: not a Concord JSON, CSV, HTML or PDF report", ErrNotReport)
}

func extractHTML(file []byte) ([]byte, error) {
	_, rest, _ := bytes.Cut(file, []byte(htmlScriptOpen))
	b, _, ok := bytes.Cut(rest, []byte("</script>"))
	if !ok {
		return nil, fmt.Errorf("%w: the concord-report block is not closed", ErrNotReport)
	}
	return b, nil
}

func extractCSV(file []byte) ([]byte, error) {
	cr := csv.NewReader(bytes.NewReader(file))
	cr.FieldsPerRecord = 4
	var enc strings.Builder
	want := 1
	for {
		row, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotReport, err)
		}
		if row[0] != csvSigned || row[2] != "json_base64" {
			continue
		}
		var i, n int
		if _, err := fmt.Sscanf(row[1], "part %d of %d", &i, &n); err != nil || i != want {
			return nil, fmt.Errorf("%w: signed data part %q out of order", ErrNotReport, row[1])
		}
		want++
		enc.WriteString(row[3])
	}
	if enc.Len() == 0 {
		return nil, fmt.Errorf("%w: no signed_report rows", ErrNotReport)
	}
	b, err := base64.StdEncoding.DecodeString(enc.String())
	if err != nil {
		return nil, fmt.Errorf("%w: signed data is not base64: %v", ErrNotReport, err)
	}
	return b, nil
}

// embeddedFile matches the object fpdf writes for an attachment.
var embeddedFile = regexp.MustCompile(`/Type /EmbeddedFile /Length (\d+) /Filter /FlateDecode /Params << /CheckSum <[0-9a-f]+> /Size (\d+) >> >>\s*stream\r?\n`)

func extractPDF(file []byte) ([]byte, error) {
	if !bytes.Contains(file, []byte("("+pdfAttachment+")")) && !bytes.Contains(file, utf16Name(pdfAttachment)) {
		return nil, fmt.Errorf("%w: the PDF has no %s attachment", ErrNotReport, pdfAttachment)
	}
	m := embeddedFile.FindSubmatchIndex(file)
	if m == nil {
		return nil, fmt.Errorf("%w: the PDF's attachment stream was not found", ErrNotReport)
	}
	n, err1 := strconv.Atoi(string(file[m[2]:m[3]]))
	size, err2 := strconv.Atoi(string(file[m[4]:m[5]]))
	if err := errors.Join(err1, err2); err != nil || n > len(file)-m[1] || size > maxSigned {
		return nil, fmt.Errorf("%w: the PDF's attachment has a bad length", ErrNotReport)
	}
	zr, err := zlib.NewReader(bytes.NewReader(file[m[1] : m[1]+n]))
	if err != nil {
		return nil, fmt.Errorf("%w: the PDF's attachment: %v", ErrNotReport, err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxSigned+1))
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("%w: the PDF's attachment is damaged", ErrNotReport)
	}
	return b, nil
}

// utf16Name is how fpdf writes a file name: UTF-16BE with a byte-order
// mark, inside a PDF string.
func utf16Name(s string) []byte {
	b := []byte{0xfe, 0xff}
	for _, c := range s {
		b = append(b, byte(c>>8), byte(c))
	}
	return b
}
