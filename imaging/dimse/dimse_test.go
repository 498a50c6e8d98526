package dimse

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/imaging/pacs"
)

func openClient(t *testing.T, o *orthanc, called, query string) *Client {
	t.Helper()
	c, err := Open(o.url(called, query), Options{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEcho(t *testing.T) {
	o := loadedOrthanc(t)
	c := openClient(t, o, orthancAET, "calling="+ourAET)
	if err := c.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRejectedCalledAET(t *testing.T) {
	o := loadedOrthanc(t)
	c := openClient(t, o, "NOTORTHANC", "calling="+ourAET)
	err := c.Echo(context.Background())
	if err == nil {
		t.Fatal("Orthanc accepted a wrong called AE title")
	}
	want := "association rejected by NOTORTHANC at " + o.dicomAddr + ": called AE title not recognised"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q, want it to start with %q", err, want)
	}
}

func date(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestFindSeries(t *testing.T) {
	o := loadedOrthanc(t)
	files := corpus(t)
	c := openClient(t, o, orthancAET, "calling="+ourAET)
	cases := []struct {
		name  string
		q     pacs.Query
		match func(f corpusFile) bool
	}{
		{"all", pacs.Query{}, func(f corpusFile) bool { return true }},
		{"modality", pacs.Query{Modality: "CT"}, func(f corpusFile) bool { return f.modality == "CT" }},
		{"date range", pacs.Query{From: date("2003-01-01"), To: date("2004-12-31")},
			func(f corpusFile) bool { return f.date >= "20030101" && f.date <= "20041231" }},
		{"date from", pacs.Query{From: date("2010-01-01")}, func(f corpusFile) bool { return f.date >= "20100101" }},
		{"date to", pacs.Query{To: date("2003-12-31")}, func(f corpusFile) bool { return f.date != "" && f.date <= "20031231" }},
		{"body part", pacs.Query{BodyPart: "HEAD"}, func(f corpusFile) bool { return f.bodyPart == "HEAD" }},
		{"description wildcard", pacs.Query{SeriesDescription: "5/5mm*"},
			func(f corpusFile) bool { return strings.HasPrefix(f.description, "5/5mm") }},
		{"modality and date", pacs.Query{Modality: "CT", To: date("2005-01-01")},
			func(f corpusFile) bool { return f.modality == "CT" && f.date != "" && f.date <= "20050101" }},
		{"no match", pacs.Query{Modality: "PT"}, func(f corpusFile) bool { return false }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.FindSeries(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]corpusFile{}
			for _, f := range files {
				if tc.match(f) {
					want[f.series] = append(want[f.series], f)
				}
			}
			var gotUIDs, wantUIDs []string
			for _, s := range got {
				gotUIDs = append(gotUIDs, s.SeriesInstanceUID)
				fs, ok := want[s.SeriesInstanceUID]
				if !ok {
					continue
				}
				f := fs[0]
				if s.StudyInstanceUID != f.study || s.Modality != f.modality || s.StudyDate != f.date ||
					s.BodyPart != f.bodyPart || s.Description != f.description || s.Instances != len(fs) {
					t.Errorf("series %s: got %+v, want study %s modality %q date %q body part %q description %q, %d instances",
						s.SeriesInstanceUID, s, f.study, f.modality, f.date, f.bodyPart, f.description, len(fs))
				}
			}
			for uid := range want {
				wantUIDs = append(wantUIDs, uid)
			}
			sort.Strings(gotUIDs)
			sort.Strings(wantUIDs)
			if strings.Join(gotUIDs, " ") != strings.Join(wantUIDs, " ") {
				t.Fatalf("series found:\n %v\nwant:\n %v", gotUIDs, wantUIDs)
			}
		})
	}
}

// seriesOf groups the corpus by series.
func seriesOf(files []corpusFile) map[string][]corpusFile {
	m := map[string][]corpusFile{}
	for _, f := range files {
		m[f.series] = append(m[f.series], f)
	}
	return m
}

// checkRetrieved compares what a retrieval stored with the uploaded files:
// same instances, same transfer syntax, pixel data byte for byte, and a
// Part 10 file the imaging package reads.
func checkRetrieved(t *testing.T, want []corpusFile, got map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("retrieved %d instances, want %d", len(got), len(want))
	}
	for _, f := range want {
		b, ok := got[f.sop]
		if !ok {
			t.Errorf("instance %s of %s not retrieved", f.sop, f.path)
			continue
		}
		pf, err := imaging.Parse(b, imaging.DefaultLimits)
		if err != nil {
			t.Errorf("retrieved %s: %v", f.path, err)
			continue
		}
		if pf.TransferSyntax != f.ts && !(isUncompressed(pf.TransferSyntax) && isUncompressed(f.ts)) {
			t.Errorf("%s came back in %s, stored in %s", f.path, pf.TransferSyntax, f.ts)
		}
		if px := pixelBytes(t, pf); !bytes.Equal(px, f.pixels) {
			t.Errorf("%s: retrieved pixel data (%d bytes) differs from the uploaded file's (%d bytes)", f.path, len(px), len(f.pixels))
		}
		if _, err := imaging.Read(b, imaging.DefaultLimits); err != nil {
			t.Errorf("imaging cannot read the retrieved %s: %v", f.path, err)
		}
	}
}

func isUncompressed(ts string) bool { return ts == imaging.TSExplicitLE || ts == imaging.TSImplicitLE }

func retrieveAll(t *testing.T, c *Client, files []corpusFile) {
	t.Helper()
	for uid, fs := range seriesOf(files) {
		got := map[string][]byte{}
		s := pacs.Series{StudyInstanceUID: fs[0].study, SeriesInstanceUID: uid}
		err := c.Retrieve(context.Background(), s, func(sop string, b []byte) error {
			if _, dup := got[sop]; dup {
				t.Errorf("instance %s delivered twice", sop)
			}
			got[sop] = b
			return nil
		})
		if err != nil {
			t.Fatalf("series of %s: %v", fs[0].path, err)
		}
		checkRetrieved(t, fs, got)
	}
}

func TestRetrieveGet(t *testing.T) {
	o := loadedOrthanc(t)
	c := openClient(t, o, orthancAET, "calling="+ourAET)
	retrieveAll(t, c, corpus(t))
}

func TestRetrieveMove(t *testing.T) {
	o := loadedOrthanc(t)
	c := openClient(t, o, orthancAET, "calling="+ourAET+"&move=1&scp_port=0")
	if err := o.setModalityPort(c.SCPAddr().(*net.TCPAddr).Port); err != nil {
		t.Fatal(err)
	}
	retrieveAll(t, c, corpus(t))
}

func TestRetrieveStoreError(t *testing.T) {
	o := loadedOrthanc(t)
	c := openClient(t, o, orthancAET, "calling="+ourAET)
	files := corpus(t)
	boom := errors.New("disk full")
	n := 0
	s := pacs.Series{StudyInstanceUID: files[0].study, SeriesInstanceUID: files[0].series}
	err := c.Retrieve(context.Background(), s, func(string, []byte) error { n++; return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("got %v after %d calls, want the store error after one call", err, n)
	}
	// The PACS is still usable after the aborted association.
	if err := c.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRetrieveCancel(t *testing.T) {
	o := loadedOrthanc(t)
	c := openClient(t, o, orthancAET, "calling="+ourAET)
	files := corpus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	s := pacs.Series{StudyInstanceUID: files[0].study, SeriesInstanceUID: files[0].series}
	err := c.Retrieve(ctx, s, func(string, []byte) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n != 1 {
		t.Fatalf("store called %d times after cancellation, want 1", n)
	}
}

// TestGetUnproposedClass: an instance whose storage class C-GET did not
// propose cannot be sent; Retrieve reports the failed sub-operation.
func TestGetUnproposedClass(t *testing.T) {
	o := loadedOrthanc(t)
	var mr corpusFile
	for _, f := range corpus(t) {
		if f.modality == "MR" {
			mr = f
		}
	}
	c, err := Open(o.url(orthancAET, "calling="+ourAET), Options{StorageClasses: []string{"1.2.840.10008.5.1.4.1.1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := pacs.Series{StudyInstanceUID: mr.study, SeriesInstanceUID: mr.series}
	err = c.Retrieve(context.Background(), s, func(string, []byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "0 completed, 1 failed") {
		t.Fatalf("got %v, want a failed sub-operation reported", err)
	}
}
