package pacs

import (
	"context"
)

// Summary is what a query would bring, found without retrieving pixel
// data: counts only, no UIDs.
type Summary struct {
	Studies   int `json:"studies"`
	Series    int `json:"series"`
	Instances int `json:"instances"`
	// Modalities and BodyParts count instances; UNKNOWN where the PACS
	// gives none.
	Modalities map[string]int `json:"modalities"`
	BodyParts  map[string]int `json:"body_parts"`
	// TransferSyntaxes counts the instances whose transfer syntax the PACS
	// gives; the rest are in UnknownTransferSyntax.
	TransferSyntaxes      map[string]int `json:"transfer_syntaxes"`
	UnknownTransferSyntax int            `json:"unknown_transfer_syntax"`
	// EstimatedBytes is the uncompressed pixel data of the instances whose
	// geometry the PACS gives (Unestimated are the others).
	EstimatedBytes int64 `json:"estimated_bytes"`
	Unestimated    int   `json:"unestimated"`
}

// Summarize runs the queries and lists each series' instances where the
// Source can (Lister); otherwise it counts what the series queries say.
// progress, when set, is called after each query's series are counted
// with the series done and found so far.
func Summarize(ctx context.Context, src Source, queries []Query, progress func(done, found int)) (Summary, error) {
	return SummarizeEach(ctx, src, queries, progress, nil)
}

// SummarizeEach is Summarize that also calls each, when set, once per series
// (a series two queries find counts once) with its instances, or nil where
// the Source cannot list them. An error from each stops the walk.
func SummarizeEach(ctx context.Context, src Source, queries []Query, progress func(done, found int), each func(Series, []Instance) error) (Summary, error) {
	sum := Summary{Modalities: map[string]int{}, BodyParts: map[string]int{}, TransferSyntaxes: map[string]int{}}
	if len(queries) == 0 {
		queries = []Query{{}}
	}
	seen, studies := map[string]bool{}, map[string]bool{}
	lister, canList := src.(Lister)
	for _, q := range queries {
		ss, err := src.FindSeries(ctx, q)
		if err != nil {
			return sum, err
		}
		found := sum.Series + len(ss)
		for i, s := range ss {
			if progress != nil && i%50 == 0 {
				progress(sum.Series, found)
			}
			if seen[s.SeriesInstanceUID] {
				continue
			}
			seen[s.SeriesInstanceUID] = true
			studies[s.StudyInstanceUID] = true
			sum.Series++
			n := max(s.Instances, 0)
			var ins []Instance
			if canList {
				if ins, err = lister.ListInstances(ctx, s); err != nil {
					return sum, err
				}
				n = len(ins)
			}
			if each != nil {
				if err := each(s, ins); err != nil {
					return sum, err
				}
			}
			sum.Instances += n
			sum.Modalities[orUnknown(s.Modality)] += n
			sum.BodyParts[orUnknown(s.BodyPart)] += n
			if !canList {
				sum.UnknownTransferSyntax += n
				sum.Unestimated += n
			}
			for _, i := range ins {
				if i.TransferSyntaxUID != "" {
					sum.TransferSyntaxes[i.TransferSyntaxUID]++
				} else {
					sum.UnknownTransferSyntax++
				}
				if b := i.EstimatedBytes(); b > 0 {
					sum.EstimatedBytes += b
				} else {
					sum.Unestimated++
				}
			}
		}
	}
	sum.Studies = len(studies)
	if progress != nil {
		progress(sum.Series, sum.Series)
	}
	return sum, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "UNKNOWN"
	}
	return s
}
