package pacs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse("20060102", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestFindSeriesFilters(t *testing.T) {
	c := loadCorpus(t)
	src := openDICOMweb(t, c.orthanc.DICOMweb, Options{})
	ctx := context.Background()
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"modality", Query{Modality: "CT"}, []string{"693_J2KI.dcm", "CT_small.dcm", "J2K_pixelrep_mismatch.dcm"}},
		{"body part", Query{Modality: "CT", BodyPart: "HEAD"}, []string{"J2K_pixelrep_mismatch.dcm"}},
		{"description wildcard", Query{SeriesDescription: "marked*"}, []string{"examples_overlay.dcm"}},
		{"date range", Query{From: day("20040101"), To: day("20041231"), Modality: "CT"}, []string{"CT_small.dcm"}},
		{"open-ended date", Query{From: day("20160101")}, []string{"J2K_pixelrep_mismatch.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", "examples_ybr_color.dcm"}},
		{"date and modality", Query{To: day("20041231"), Modality: "US"}, []string{"ExplVR_BigEnd.dcm", "examples_jpeg2k.dcm"}},
		{"nothing", Query{Modality: "PT"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ss, err := src.FindSeries(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range ss {
				got = append(got, c.seriesOf[s.SeriesInstanceUID])
				if s.Instances != 1 {
					t.Errorf("%s: %d instances, want 1", c.seriesOf[s.SeriesInstanceUID], s.Instances)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	ss, _ := src.FindSeries(ctx, Query{Modality: "CT", BodyPart: "HEAD"})
	if len(ss) == 1 && (ss[0].BodyPart != "HEAD" || ss[0].Description != "Lv2" || ss[0].StudyDate != "20191019" || ss[0].Modality != "CT") {
		t.Errorf("series attributes: %+v", ss[0])
	}
}

func TestRetrieveIsByteIdentical(t *testing.T) {
	c := loadCorpus(t)
	src := openDICOMweb(t, c.orthanc.DICOMweb+"/", Options{})
	ctx := context.Background()
	ss, err := src.FindSeries(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != len(corpusFiles) {
		t.Fatalf("found %d series, uploaded %d", len(ss), len(corpusFiles))
	}
	got := map[string]bool{}
	for _, s := range ss {
		err := src.Retrieve(ctx, s, func(sop string, b []byte) error {
			if want, ok := c.bySOP[sop]; !ok || !bytes.Equal(b, want) {
				t.Errorf("%s: retrieved %d bytes differ from the %d uploaded", c.seriesOf[s.SeriesInstanceUID], len(b), len(want))
			}
			got[sop] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The same bytes one instance at a time, listed first.
		ins, err := src.(Lister).ListInstances(ctx, s)
		if err != nil || len(ins) != 1 {
			t.Fatalf("list instances: %v, %d", err, len(ins))
		}
		err = src.(InstanceRetriever).RetrieveInstances(ctx, s, []string{ins[0].SOPInstanceUID}, func(sop string, b []byte) error {
			if sop != ins[0].SOPInstanceUID || !bytes.Equal(b, c.bySOP[sop]) {
				t.Errorf("%s: instance retrieval differs", c.seriesOf[s.SeriesInstanceUID])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.seriesOf[s.SeriesInstanceUID] == "CT_small.dcm" && ins[0].EstimatedBytes() != 128*128*2 {
			t.Errorf("CT_small: estimated %d bytes, want %d", ins[0].EstimatedBytes(), 128*128*2)
		}
	}
	if len(got) != len(c.bySOP) {
		t.Errorf("retrieved %d instances, uploaded %d", len(got), len(c.bySOP))
	}
	// store's error stops the retrieval and comes back as it was.
	stop := errors.New("stop here")
	if err := src.Retrieve(ctx, ss[0], func(string, []byte) error { return stop }); err != stop {
		t.Errorf("store's error came back as %v", err)
	}
}

func TestErrorsNameThePACSAndTheReason(t *testing.T) {
	c := loadCorpus(t)
	ctx := context.Background()
	src := openDICOMweb(t, c.orthanc.DICOMweb, Options{})
	secret := "1.2.3.4.5.999"
	err := src.Retrieve(ctx, Series{StudyInstanceUID: secret, SeriesInstanceUID: secret + ".1"}, func(string, []byte) error { return nil })
	if err == nil {
		t.Fatal("retrieving a series the PACS lacks succeeded")
	}
	for _, want := range []string{c.orthanc.DICOMweb, "retrieve series", "404", "inexistent item"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q holds a UID", err)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := fmt.Sprintf("http://user:hunter2@%s/dicom-web", l.Addr())
	l.Close()
	src = openDICOMweb(t, dead, Options{Timeout: 5 * time.Second})
	_, err = src.FindSeries(ctx, Query{Modality: "CT"})
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("unreachable PACS: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the password", err)
	}

	for _, u := range []string{"ftp://pacs/x", "dicom://PACS@host:104", "http://"} {
		if _, err := Open(u, Options{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Open(%q): %v, want ErrUnsupported", u, err)
		}
	}
}

func TestSummarizeWithoutRetrieving(t *testing.T) {
	c := loadCorpus(t)
	px := newProxy(t, c.orthanc.URL)
	src := openDICOMweb(t, px.URL+"/dicom-web", Options{})
	last := [2]int{}
	sum, err := Summarize(context.Background(), src, []Query{{Modality: "CT"}, {Modality: "MR"}, {Modality: "CT", BodyPart: "HEAD"}},
		func(done, found int) { last = [2]int{done, found} })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Series != 5 || sum.Studies != 5 || sum.Instances != 5 || sum.Modalities["CT"] != 3 || sum.Modalities["MR"] != 2 ||
		sum.BodyParts["HEAD"] != 1 || sum.BodyParts["ABDOMEN"] != 1 || sum.BodyParts["UNKNOWN"] != 3 {
		t.Errorf("summary %+v", sum)
	}
	if last != [2]int{5, 5} {
		t.Errorf("last progress %v, want 5 of 5", last)
	}
	// Orthanc does not say transfer syntaxes; geometry it does.
	if sum.UnknownTransferSyntax != 5 || sum.Unestimated != 0 || sum.EstimatedBytes < 128*128*2 {
		t.Errorf("summary %+v", sum)
	}
	if s, i := retrievals(px.requests()); len(s)+len(i) != 0 {
		t.Errorf("a summary retrieved %d series and %d instances", len(s), len(i))
	}
}
