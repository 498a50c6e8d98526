package imaging

import "strings"

// Structured reports (PS3.3 C.17): the coded content items of an SR
// document, read from its content tree. Only what labelling needs is read:
// CODE items, their concept name and their value; text, numbers and
// references are passed over.

const srSOPClassPrefix = "1.2.840.10008.5.1.4.1.1.88."

const (
	tagValueType          Tag = 0x0040A040
	tagConceptNameCodeSeq Tag = 0x0040A043
	tagConceptCodeSeq     Tag = 0x0040A168
	tagContentSequence    Tag = 0x0040A730
	tagCodeValue          Tag = 0x00080100
	tagCodingScheme       Tag = 0x00080102
	tagCodeMeaning        Tag = 0x00080104
)

// Key is the code's identity, SCHEME:VALUE (the meaning is for people).
func (c Code) Key() string { return c.Scheme + ":" + c.Value }

// CodedItem is one CODE content item of a report: the concept it answers
// (Name, e.g. DCM:121071 "Finding") and the coded answer (Value).
type CodedItem struct {
	Name, Value Code
}

// IsStructuredReport says whether a data set is an SR document (any of the
// SR storage SOP classes, or modality SR).
func IsStructuredReport(ds *Dataset) bool {
	return strings.HasPrefix(ds.String(tagSOPClassUID), srSOPClassPrefix) || strings.EqualFold(ds.String(tagModality), "SR")
}

// CodedItems returns the report's CODE content items in document order
// (depth first). The parser bounds the tree's depth and size; items with
// no concept name or no value are skipped.
func CodedItems(ds *Dataset) []CodedItem {
	var out []CodedItem
	var walk func(items []*Dataset)
	walk = func(items []*Dataset) {
		for _, it := range items {
			if strings.EqualFold(it.String(tagValueType), "CODE") {
				name, okn := firstCode(it, tagConceptNameCodeSeq)
				value, okv := firstCode(it, tagConceptCodeSeq)
				if okn && okv {
					out = append(out, CodedItem{Name: name, Value: value})
				}
			}
			if c := it.Find(tagContentSequence); c != nil {
				walk(c.Items)
			}
		}
	}
	if c := ds.Find(tagContentSequence); c != nil {
		walk(c.Items)
	}
	return out
}

func firstCode(ds *Dataset, seq Tag) (Code, bool) {
	s := ds.Find(seq)
	if s == nil || len(s.Items) == 0 {
		return Code{}, false
	}
	it := s.Items[0]
	c := Code{Scheme: it.String(tagCodingScheme), Value: it.String(tagCodeValue), Meaning: it.String(tagCodeMeaning)}
	return c, c.Scheme != "" && c.Value != ""
}
