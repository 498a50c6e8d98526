package registry

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Decide applies the job's gates to the validation results of the final
// model; prev is the currently published version of the same name (nil:
// none). Only results for the global model count, the latest round of
// each site; every validation site must have one, with its signed receipt.
// No validation sites and no gates pass; gates without validation sites
// are rejected, since nothing could show they hold. Each reason names the
// site, the metric, the value and the bound.
func Decide(gates *pb.ValidationSpec, validationSites []string, results []Validation, prev *Manifest) Gate {
	if len(validationSites) == 0 {
		if gatesSet(gates) {
			return Gate{State: GateRejected, Reasons: []string{
				"gates need validation_sites: the job sets promotion gates but names no validation site to check them; name validation sites or remove the gates"}}
		}
		return Gate{State: GatePassed}
	}
	latest := globalResults(results)
	var reasons []string
	var present []Validation
	for _, site := range validationSites {
		v, ok := latest[site]
		if !ok || len(v.Receipt) == 0 {
			reasons = append(reasons, fmt.Sprintf("no signed validation receipt from site %s", site))
			continue
		}
		present = append(present, v)
		reasons = append(reasons, siteReasons(gates, v)...)
	}
	if gates.GetMaxAucRegression() > 0 && prev != nil && len(present) == len(validationSites) {
		reasons = append(reasons, regression(gates.GetMaxAucRegression(), present, prev)...)
	}
	if len(reasons) > 0 {
		return Gate{State: GateRejected, Reasons: reasons}
	}
	return Gate{State: GatePassed}
}

func gatesSet(g *pb.ValidationSpec) bool {
	return g.GetMinAuc() > 0 || g.GetMinSensitivity() > 0 || g.GetMaxAucRegression() > 0 ||
		g.GetMaxSubgroupGap() > 0 || g.GetMinDice() > 0
}

// globalResults keeps, per site, the global model's result of the latest
// round.
func globalResults(results []Validation) map[string]Validation {
	out := map[string]Validation{}
	for _, v := range results {
		if v.ModelRole != RoleGlobal {
			continue
		}
		if old, ok := out[v.Site]; !ok || v.Round >= old.Round {
			out[v.Site] = v
		}
	}
	return out
}

// siteReasons checks the per-site bounds.
func siteReasons(g *pb.ValidationSpec, v Validation) []string {
	var reasons []string
	atLeast := func(metric string, bound float64, gate, note string) {
		if bound <= 0 {
			return
		}
		e, ok := v.Assessment.Metrics[metric]
		switch {
		case !ok || math.IsNaN(e.Value):
			reasons = append(reasons, fmt.Sprintf("site %s: no %s reported, needed for %s %s%s", v.Site, metric, gate, num(bound), note))
		case e.Value < bound:
			reasons = append(reasons, fmt.Sprintf("site %s: %s %s < %s %s%s", v.Site, metric, below(e.Value, bound), gate, num(bound), note))
		}
	}
	atLeast("auc", g.GetMinAuc(), "min_auc", "")
	if spec := g.GetAtSpecificity(); spec > 0 {
		atLeast("sensitivity_at_specificity", g.GetMinSensitivity(), "min_sensitivity", " (at specificity "+num(spec)+")")
	} else {
		atLeast("sensitivity", g.GetMinSensitivity(), "min_sensitivity", "")
	}
	atLeast("dice", g.GetMinDice(), "min_dice", "")
	if gap := g.GetMaxSubgroupGap(); gap > 0 {
		reasons = append(reasons, subgroupGaps(v, gap)...)
	}
	return reasons
}

// subgroupGaps reports each field whose non-suppressed subgroups' AUCs
// differ by more than bound.
func subgroupGaps(v Validation, bound float64) []string {
	type extreme struct {
		lo, hi         float64
		loName, hiName string
	}
	byField := map[string]*extreme{}
	for _, s := range v.Assessment.Subgroups {
		e, ok := s.Metrics["auc"]
		if s.Suppressed || !ok || math.IsNaN(e.Value) {
			continue
		}
		name := s.Field + "=" + s.Value
		x := byField[s.Field]
		if x == nil {
			byField[s.Field] = &extreme{e.Value, e.Value, name, name}
			continue
		}
		if e.Value < x.lo {
			x.lo, x.loName = e.Value, name
		}
		if e.Value > x.hi {
			x.hi, x.hiName = e.Value, name
		}
	}
	fields := make([]string, 0, len(byField))
	for f := range byField {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	var reasons []string
	for _, f := range fields {
		x := byField[f]
		if d := x.hi - x.lo; d > bound {
			reasons = append(reasons, fmt.Sprintf("site %s: auc gap %s between %s (%s) and %s (%s) > max_subgroup_gap %s",
				v.Site, val(d), x.loName, val(x.lo), x.hiName, val(x.hi), num(bound)))
		}
	}
	return reasons
}

// regression compares the mean AUC over the validation sites of the
// candidate and of prev.
func regression(bound float64, present []Validation, prev *Manifest) []string {
	cur, ok := meanAUC(present)
	if !ok {
		return nil // each missing AUC was reported already, or no AUC gate applies
	}
	var old []Validation
	for _, v := range globalResults(prev.Validation) {
		old = append(old, v)
	}
	before, ok := meanAUC(old)
	if !ok {
		return nil // nothing to regress against
	}
	if before-cur > bound {
		return []string{fmt.Sprintf("mean auc over validation sites %s is %s below %s's %s > max_auc_regression %s",
			val(cur), val(before-cur), prev.Version, val(before), num(bound))}
	}
	return nil
}

func meanAUC(vs []Validation) (float64, bool) {
	sum, n := 0.0, 0
	for _, v := range vs {
		if e, ok := v.Assessment.Metrics["auc"]; ok && !math.IsNaN(e.Value) {
			sum += e.Value
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// val prints a measured value.
func val(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// num prints a bound as given when it has at most three decimals (0.85),
// else rounded to three.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if _, frac, ok := strings.Cut(s, "."); ok && len(frac) > 3 {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return s
}

// below prints a value that failed a bound with enough digits that it
// does not read as equal to the bound.
func below(v, bound float64) string {
	for d := 3; d < 10; d++ {
		s := strconv.FormatFloat(v, 'f', d, 64)
		if p, _ := strconv.ParseFloat(s, 64); p < bound {
			return s
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
