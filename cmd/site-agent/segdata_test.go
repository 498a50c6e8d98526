package main

import (
	"strings"
	"testing"

	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestDataSourceLayout: data.layout picks the reader, and settings of the
// other layout are refused rather than ignored.
func TestDataSourceLayout(t *testing.T) {
	abs := func(p string) string { return "/base/" + p }
	var fc fileConfig
	fc.Data.Dir, fc.Data.Layout, fc.Data.Segment = "ct", "segmentation", 2
	src, err := fc.dataSource(abs, nil, "")
	if sf, ok := src.(*siteagent.SegFolder); err != nil || !ok || sf.Dir != "/base/ct" || sf.Segment != 2 {
		t.Fatalf("segmentation layout: %T %+v, %v", src, src, err)
	}
	fc.Data.Layout, fc.Data.Segment = "", 0
	if src, err := fc.dataSource(abs, nil, ""); err != nil {
		t.Fatal(err)
	} else if _, ok := src.(*siteagent.DICOMFolder); !ok {
		t.Fatalf("default layout: %T", src)
	}
	for _, c := range []struct {
		layout, feedback, want string
		classes                []string
		segment                int
	}{
		{layout: "segmentation", classes: []string{"a"}, want: "data.classes is for data.layout classes"},
		{layout: "segmentation", feedback: "fb", want: "feedback.dir holds corrected labels"},
		{layout: "segmentation", segment: -1, want: "data.segment is -1"},
		{layout: "classes", segment: 1, want: "data.segment is for data.layout segmentation"},
		{layout: "masks", want: `data.layout is "masks"`},
	} {
		fc.Data.Layout, fc.Data.Classes, fc.Data.Segment = c.layout, c.classes, c.segment
		if _, err := fc.dataSource(abs, nil, c.feedback); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
