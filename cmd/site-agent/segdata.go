package main

import (
	"errors"
	"fmt"
	"log/slog"

	siteagent "github.com/concord-fl/concord/site-agent"
)

// dataSource converts agent.yaml's data section: a folder per class for
// classification jobs (the default), or images with masks for
// segmentation jobs (data.layout: segmentation).
func (fc fileConfig) dataSource(abs func(string) string, logger *slog.Logger, feedback string) (siteagent.DataSource, error) {
	d := fc.Data
	switch d.Layout {
	case "", "classes":
		if d.Segment != 0 {
			return nil, errors.New("data.segment is for data.layout segmentation: remove it")
		}
		return &siteagent.DICOMFolder{Dir: abs(d.Dir), Classes: d.Classes, AllowBurnedIn: d.AllowBurnedIn, Logger: logger, Feedback: feedback}, nil
	case "segmentation":
		switch {
		case len(d.Classes) > 0:
			return nil, errors.New("data.classes is for data.layout classes: a segmentation folder has masks, not class folders; remove it")
		case feedback != "":
			return nil, errors.New("feedback.dir holds corrected labels of a classifier: a segmentation site has none yet; remove it")
		case d.Segment < 0 || d.Segment > 65535:
			return nil, fmt.Errorf("data.segment is %d: a DICOM SEG segment number, 1..65535, or 0 for all", d.Segment)
		}
		return &siteagent.SegFolder{Dir: abs(d.Dir), Segment: d.Segment, AllowBurnedIn: d.AllowBurnedIn, Logger: logger}, nil
	}
	return nil, fmt.Errorf("data.layout is %q: use classes (a folder per class) or segmentation (images with masks)", d.Layout)
}
