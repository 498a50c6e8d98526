package evaluation

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Fold is one train/test split, as sample indices in increasing order.
type Fold struct {
	// Name identifies the fold in reports: "fold 1/5" or the held-out site.
	Name  string `json:"name"`
	Train []int  `json:"train"`
	Test  []int  `json:"test"`
}

// StratifiedKFold splits samples into k folds whose class proportions match
// the whole set as closely as counts allow (each class's share of a fold
// differs from its share of any other fold by at most one sample). Each
// sample is in exactly one test set. Labels are arbitrary non-negative class
// ids; every class needs at least k samples so that every test fold sees
// every class. The split depends only on labels, k and seed.
func StratifiedKFold(labels []int, k int, seed int64) ([]Fold, error) {
	if k < 2 {
		return nil, fmt.Errorf("stratified k-fold: k = %d; need at least 2", k)
	}
	if len(labels) < k {
		return nil, fmt.Errorf("stratified k-fold: %d samples cannot fill %d folds", len(labels), k)
	}
	byClass := map[int][]int{}
	for i, l := range labels {
		if l < 0 {
			return nil, fmt.Errorf("stratified k-fold: label %d is negative (%d)", i, l)
		}
		byClass[l] = append(byClass[l], i)
	}
	classes := make([]int, 0, len(byClass))
	for c, idx := range byClass {
		if len(idx) < k {
			return nil, fmt.Errorf("stratified k-fold: class %d has %d samples, fewer than k = %d folds; lower k or merge rare classes", c, len(idx), k)
		}
		classes = append(classes, c)
	}
	slices.Sort(classes)

	rng := rand.New(rand.NewPCG(uint64(seed), 0xf01d))
	foldOf := make([]int, len(labels))
	next := 0 // carried across classes so that fold sizes stay balanced too
	for _, c := range classes {
		idx := slices.Clone(byClass[c])
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		for _, i := range idx {
			foldOf[i] = next
			next = (next + 1) % k
		}
	}
	folds := make([]Fold, k)
	for f := range folds {
		folds[f].Name = fmt.Sprintf("fold %d/%d", f+1, k)
	}
	for i, f := range foldOf {
		for g := range folds {
			if g == f {
				folds[g].Test = append(folds[g].Test, i)
			} else {
				folds[g].Train = append(folds[g].Train, i)
			}
		}
	}
	return folds, nil
}

// LeaveOneSiteOut returns one fold per site, in site-name order: the fold
// named after a site tests on that site's samples and trains on all others.
// siteOf[i] is the site of sample i. It measures how a federated model
// generalises to a hospital that did not take part in training.
func LeaveOneSiteOut(siteOf []string) ([]Fold, error) {
	bySite := map[string][]int{}
	for i, s := range siteOf {
		if s == "" {
			return nil, fmt.Errorf("leave-one-site-out: sample %d has no site", i)
		}
		bySite[s] = append(bySite[s], i)
	}
	if len(bySite) < 2 {
		return nil, errors.New("leave-one-site-out: need samples from at least 2 sites")
	}
	sites := make([]string, 0, len(bySite))
	for s := range bySite {
		sites = append(sites, s)
	}
	slices.Sort(sites)
	folds := make([]Fold, len(sites))
	for f, s := range sites {
		folds[f].Name = s
		folds[f].Test = bySite[s]
		for i, o := range siteOf {
			if o != s {
				folds[f].Train = append(folds[f].Train, i)
			}
		}
	}
	return folds, nil
}
