package siteagent

import (
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/imaging/pacs"
)

// segLabels derive labels from the DICOM SEG objects in the PACS: an
// image a segmentation references with a non-empty mask is class 1; an
// image it references with an empty mask, or one it does not reference in
// a study it segments, is class 0; an image in a study without a
// segmentation has no label.
type segLabels struct {
	bySOP   map[string]int
	studies map[string]bool
}

func newSEGLabels() *segLabels {
	return &segLabels{bySOP: map[string]int{}, studies: map[string]bool{}}
}

// add takes one segmentation of study, already read.
func (l *segLabels) add(study string, im *imaging.Image) error {
	seg, err := imaging.SegmentationOf(im)
	if err != nil {
		return err
	}
	for _, fr := range seg.Frames {
		if fr.SourceSOPInstanceUID == "" {
			continue
		}
		if _, ok := l.bySOP[fr.SourceSOPInstanceUID]; !ok {
			l.bySOP[fr.SourceSOPInstanceUID] = 0
		}
		for _, v := range fr.Mask {
			if v != 0 {
				l.bySOP[fr.SourceSOPInstanceUID] = 1
				break
			}
		}
	}
	l.studies[study] = true
	return nil
}

func (l *segLabels) label(study, sop string) (int, bool) {
	if y, ok := l.bySOP[sop]; ok {
		return y, true
	}
	if l.studies[study] {
		return 0, true
	}
	return 0, false
}

// withModalityQueries adds, for each query, one for the objects of modality
// (SEG, SR) of the same studies' dates: such a series seldom has the
// images' body part or description.
func withModalityQueries(qs []pacs.Query, modality string) []pacs.Query {
	if len(qs) == 0 {
		return nil // no query: every series, these included
	}
	out := append([]pacs.Query(nil), qs...)
	for _, q := range qs {
		out = append(out, pacs.Query{Modality: modality, From: q.From, To: q.To})
	}
	return out
}
