package siteagent

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/imaging/pacs"
)

// PACSScan is what the PACS source of a site would bring, found without
// retrieving an image: the query's counts (pacs.Summary), the instances a
// load would skip whatever their label, and with a label source the images
// each class would get and those left without a label, by reason. Counts
// only, no UIDs.
type PACSScan struct {
	pacs.Summary
	// Images is the instances that would go through the job's pipeline: the
	// query's instances less the skipped ones and the label objects.
	Images int `json:"images"`
	// Skipped counts, by the reason a data load gives, the instances it
	// would skip whatever their label, as far as the query tells (transfer
	// syntax, objects without pixel data). Each instance is counted once,
	// under the first reason the scan can tell.
	Skipped map[string]Count `json:"skipped"`
	// Labels is nil when no label source was given.
	Labels *LabelScan `json:"labels,omitempty"`
}

// Count is a number of instances and of the studies they are in.
type Count struct {
	Instances int `json:"instances"`
	Studies   int `json:"studies"`
}

// LabelScan is how the configured label source labels the images.
type LabelScan struct {
	// Source is "csv", "seg" or "sr".
	Source string `json:"source"`
	// Classes counts the images of each class, in class order.
	Classes []ClassCount `json:"classes"`
	// Unlabelled counts, by the reason a data load gives, the images
	// without a label.
	Unlabelled map[string]Count `json:"unlabelled"`
	// Read is the label objects (SEG or SR) the scan retrieved and read, and
	// their bytes; a CSV needs none. Broken counts those that could not be
	// read, by reason.
	Read   Count          `json:"read"`
	Bytes  int64          `json:"bytes"`
	Broken map[string]int `json:"broken,omitempty"`
}

// ClassCount is one class's images.
type ClassCount struct {
	Class string `json:"class"`
	Count
}

// noPixelModalities have no pixel data: a load skips them ("no pixel data")
// unless they are the label source.
var noPixelModalities = map[string]bool{"SR": true, "KO": true, "PR": true, "DOC": true, "RTSTRUCT": true, "RTPLAN": true, "RTRECORD": true}

// maxHeldImages bounds the images a SEG-labelled scan keeps (by SOP
// Instance UID) until every segmentation is read: some hundred MB.
const maxHeldImages = 2_000_000

// errNoInstances is the reason for images whose label needs their SOP
// Instance UID when the PACS lists no instances (DIMSE without IMAGE-level
// queries here).
const errNoInstances = "not known before retrieval: the PACS lists no instances, and the label needs the instance's uid"

// ScanPACS runs cfg's queries against its PACS, as a data load would, and
// labels what they find with cfg's label source (none, a labels CSV, SEG or
// SR objects). It lists instances where the PACS can (DICOMweb) and
// retrieves only the label objects a SEG or SR source needs, never an
// image; what cannot be known before retrieval (a broken file, burned-in
// annotation, the pipeline's refusals) is not counted. progress is as in
// pacs.Summarize.
func ScanPACS(ctx context.Context, cfg PACSConfig, progress func(done, found int)) (PACSScan, error) {
	labels, rule, queries, err := labelSource(cfg)
	if err != nil {
		return PACSScan{}, err
	}
	src, err := pacs.Open(cfg.URL, cfg.Options)
	if err != nil {
		return PACSScan{}, err
	}
	defer src.Close()
	skipped, unlabelled, classes := tallies[string]{}, tallies[string]{}, tallies[int]{}
	out := PACSScan{}
	var segs *segLabels
	var srs *srLabels
	switch {
	case labels != nil:
		out.Labels = &LabelScan{Source: "csv"}
	case cfg.SEGLabels:
		segs = newSEGLabels()
		out.Labels = &LabelScan{Source: "seg", Broken: map[string]int{}}
	case rule != nil:
		srs = rule.newLoad()
		out.Labels = &LabelScan{Source: "sr", Broken: map[string]int{}}
	}
	// The label of an image, or the reason it has none.
	classify := func(study, sop string) (int, string) {
		switch {
		case labels != nil:
			if y, ok := labels.Label(study, sop); ok {
				return y, ""
			}
			if sop == "" && labels.HasInstanceRows() {
				return -1, errNoInstances
			}
			return -1, "no label in the labels file"
		case segs != nil:
			y, ok := segs.label(study, sop)
			switch {
			case !ok:
				return -1, "no segmentation in its study"
			case sop == "":
				return -1, errNoInstances
			}
			return y, ""
		}
		y, reason := srs.label(study)
		if reason != "" {
			return -1, reason
		}
		return y, ""
	}
	count := func(study, sop string, n int) {
		if y, reason := classify(study, sop); y >= 0 {
			classes.add(y, study, n)
		} else {
			unlabelled.add(reason, study, n)
		}
	}
	// A CSV labels an image at once. SEG and SR labels are known only once
	// every label object was read, so those images wait: by study for
	// reports, by instance (bounded) for segmentations.
	type image struct {
		study, sop string
		n          int // instances: more than one where the PACS lists none
	}
	var held []image
	heldStudies := map[string]int{}
	take := func(study, sop string, n int) error {
		out.Images += n
		switch {
		case srs != nil:
			heldStudies[study] += n
		case segs != nil:
			if len(held) >= maxHeldImages {
				return fmt.Errorf("the query finds more than %d images to match with segmentations: narrow it (dates, modality) and scan in parts", maxHeldImages)
			}
			held = append(held, image{study, sop, n})
		case labels != nil:
			count(study, sop, n)
		}
		return nil
	}
	readStudies := map[string]bool{}
	out.Summary, err = pacs.SummarizeEach(ctx, src, queries, progress, func(s pacs.Series, ins []pacs.Instance) error {
		if (segs != nil && s.Modality == "SEG") || (srs != nil && s.Modality == "SR") {
			return src.Retrieve(ctx, s, func(_ string, part10 []byte) error {
				ls := out.Labels
				ls.Read.Instances++
				ls.Bytes += int64(len(part10))
				readStudies[s.StudyInstanceUID] = true
				if segs != nil {
					im, err := imaging.Read(part10, imaging.DefaultLimits)
					if err == nil && !imaging.IsSegmentation(im) {
						err = errors.New("not a segmentation")
					}
					if err == nil {
						err = segs.add(s.StudyInstanceUID, im)
					}
					if err != nil {
						ls.Broken["segmentation: "+imaging.Reason(err)]++
					}
					return ctx.Err()
				}
				doc, err := imaging.Parse(part10, imaging.DefaultLimits)
				switch {
				case err != nil:
					ls.Broken["report: "+imaging.Reason(err)]++
				case !imaging.IsStructuredReport(doc.Data):
					ls.Broken["report: not a structured report"]++
				default:
					srs.add(s.StudyInstanceUID, doc.Data)
				}
				return ctx.Err()
			})
		}
		if ins == nil {
			n := max(s.Instances, 0)
			switch {
			case noPixelModalities[s.Modality]:
				skipped.add("no pixel data", s.StudyInstanceUID, n)
			case n > 0:
				return take(s.StudyInstanceUID, "", n)
			}
			return nil
		}
		for _, in := range ins {
			switch {
			case noPixelModalities[s.Modality]:
				skipped.add("no pixel data", s.StudyInstanceUID, 1)
			case in.TransferSyntaxUID != "" && !imaging.CanDecode(in.TransferSyntaxUID):
				skipped.add(imaging.Reason(&imaging.UnsupportedSyntaxError{UID: in.TransferSyntaxUID}), s.StudyInstanceUID, 1)
			default:
				if err := take(s.StudyInstanceUID, in.SOPInstanceUID, 1); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	out.Skipped = skipped.counts()
	for _, im := range held {
		count(im.study, im.sop, im.n)
	}
	for study, n := range heldStudies {
		count(study, "", n)
	}
	if ls := out.Labels; ls != nil {
		ls.Read.Studies = len(readStudies)
		ls.Unlabelled = unlabelled.counts()
		n := len(cfg.Classes)
		for i := range classes {
			n = max(n, i+1)
		}
		per := classes.counts()
		for i := range n {
			ls.Classes = append(ls.Classes, ClassCount{Class: className(cfg.Classes, i), Count: per[i]})
		}
	}
	return out, nil
}

func className(classes []string, i int) string {
	if i < len(classes) {
		return classes[i]
	}
	return strconv.Itoa(i)
}

// tallies count instances and the distinct studies they are in, by key.
type tallies[K comparable] map[K]*tally

type tally struct {
	n       int
	studies map[string]bool
}

func (m tallies[K]) add(key K, study string, n int) {
	t := m[key]
	if t == nil {
		t = &tally{studies: map[string]bool{}}
		m[key] = t
	}
	t.n += n
	t.studies[study] = true
}

func (m tallies[K]) counts() map[K]Count {
	out := map[K]Count{}
	for k, t := range m {
		out[k] = Count{Instances: t.n, Studies: len(t.studies)}
	}
	return out
}
