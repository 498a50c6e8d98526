package siteagent

import (
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/concord-fl/concord/imaging"
)

// SRLabelConfig derives labels from the structured reports (DICOM SR) in
// the same studies: every image of a study takes the class of the study's
// coded finding. Finding is the concept name of the CODE content item that
// holds it (SCHEME:VALUE, e.g. DCM:121071 "Finding"); Classes maps each
// coded value (SCHEME:VALUE, e.g. SCT:233604007) to one of data.classes.
type SRLabelConfig struct {
	Finding string
	Classes map[string]string
}

var codeKey = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,16}:[^\s:]{1,64}$`)

// srRule is the labelling rule, checked once when the source opens: a
// study is labelled when its reports carry the finding with exactly one
// mapped value. A study without a report, a report without the finding, a
// value not in Classes and reports that disagree leave the study's images
// unlabelled, each counted with its reason.
type srRule struct {
	finding string
	class   map[string]int // coded value → class index
}

func newSRRule(cfg SRLabelConfig, classes []string) (*srRule, error) {
	const where = "data.pacs.sr_labels"
	if !codeKey.MatchString(cfg.Finding) {
		return nil, fmt.Errorf("%s.finding %q: give the finding's concept name as SCHEME:VALUE, e.g. DCM:121071", where, cfg.Finding)
	}
	if len(cfg.Classes) == 0 {
		return nil, fmt.Errorf("%s.classes: map each coded finding (SCHEME:VALUE) to one of data.classes", where)
	}
	r := &srRule{finding: cfg.Finding, class: map[string]int{}}
	for code, name := range cfg.Classes {
		if !codeKey.MatchString(code) {
			return nil, fmt.Errorf("%s.classes: %q is not a code: write SCHEME:VALUE, e.g. SCT:233604007", where, code)
		}
		i := slices.Index(classes, name)
		if i < 0 {
			return nil, fmt.Errorf("%s.classes: %s maps to %q, which is not one of data.classes %v", where, code, name, classes)
		}
		r.class[code] = i
	}
	return r, nil
}

// srLabels is one data load's reading of the reports under a rule.
type srLabels struct {
	*srRule
	values  map[string][]int // study → classes its reports give
	unknown map[string]string
	noItem  map[string]bool
}

func (r *srRule) newLoad() *srLabels {
	return &srLabels{srRule: r, values: map[string][]int{}, unknown: map[string]string{}, noItem: map[string]bool{}}
}

// add reads one report of study.
func (l *srLabels) add(study string, ds *imaging.Dataset) {
	found := false
	for _, it := range imaging.CodedItems(ds) {
		if it.Name.Key() != l.finding {
			continue
		}
		found = true
		if y, ok := l.class[it.Value.Key()]; ok {
			if !slices.Contains(l.values[study], y) {
				l.values[study] = append(l.values[study], y)
			}
		} else {
			l.unknown[study] = it.Value.Key()
		}
	}
	if !found {
		l.noItem[study] = true
	}
}

// label returns the study's class, or the reason it has none.
func (l *srLabels) label(study string) (int, string) {
	v := l.values[study]
	switch {
	case len(v) == 1 && l.unknown[study] == "":
		return v[0], ""
	case len(v) > 1 || (len(v) == 1 && l.unknown[study] != ""):
		return 0, "its study's reports disagree on the finding"
	case l.unknown[study] != "":
		return 0, "its study's finding " + l.unknown[study] + " is not in data.pacs.sr_labels.classes"
	case l.noItem[study]:
		return 0, "its study's reports have no " + l.finding + " finding"
	}
	return 0, "no structured report in its study"
}

var errLabelSources = errors.New("pacs data source: labels come from one place: set one of data.pacs.labels (a CSV), data.pacs.seg_labels or data.pacs.sr_labels")
