package registry

import (
	"reflect"
	"testing"

	"github.com/concord-fl/concord/evaluation"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

func TestDecide(t *testing.T) {
	v := func(site string, auc float64) Validation {
		return Validation{Site: site, ModelRole: RoleGlobal, Round: 3, Receipt: []byte("r"), Assessment: assessment(auc)}
	}
	with := func(val Validation, f func(a *evaluation.Assessment)) Validation {
		a := assessment(val.Assessment.Metrics["auc"].Value)
		f(&a)
		val.Assessment = a
		return val
	}
	two := []string{"st-marys", "north"}
	good := []Validation{v("st-marys", 0.9), v("north", 0.88)}
	prev := &Manifest{Version: "v3", Validation: []Validation{v("st-marys", 0.93), v("north", 0.91)}}
	for _, tc := range []struct {
		name    string
		gates   *pb.ValidationSpec
		sites   []string
		results []Validation
		prev    *Manifest
		want    []string // nil: passed
	}{
		{"no sites no gates", nil, nil, nil, nil, nil},
		{"no sites, empty gates", &pb.ValidationSpec{MinSubgroupCount: 10}, nil, nil, nil, nil},
		{"gates without sites", &pb.ValidationSpec{MinAuc: 0.8}, nil, good, nil,
			[]string{"gates need validation_sites: the job sets promotion gates but names no validation site to check them; name validation sites or remove the gates"}},
		{"sites, no gates", nil, two, good, nil, nil},
		{"missing receipt", nil, two, good[:1], nil, []string{"no signed validation receipt from site north"}},
		{"unsigned result", nil, []string{"north"}, []Validation{{Site: "north", ModelRole: RoleGlobal, Assessment: assessment(0.9)}}, nil,
			[]string{"no signed validation receipt from site north"}},
		{"local model does not count", nil, []string{"north"}, []Validation{{Site: "north", ModelRole: "site:north", Receipt: []byte("r"), Assessment: assessment(0.9)}}, nil,
			[]string{"no signed validation receipt from site north"}},
		{"min_auc pass", &pb.ValidationSpec{MinAuc: 0.85}, two, good, nil, nil},
		{"min_auc fail", &pb.ValidationSpec{MinAuc: 0.85}, two, []Validation{v("st-marys", 0.812), v("north", 0.9)}, nil,
			[]string{"site st-marys: auc 0.812 < min_auc 0.85"}},
		{"min_auc just below", &pb.ValidationSpec{MinAuc: 0.85}, []string{"north"}, []Validation{v("north", 0.84999)}, nil,
			[]string{"site north: auc 0.84999 < min_auc 0.85"}},
		{"latest round counts", &pb.ValidationSpec{MinAuc: 0.85}, []string{"north"},
			[]Validation{v("north", 0.9), {Site: "north", ModelRole: RoleGlobal, Round: 1, Receipt: []byte("r"), Assessment: assessment(0.5)}}, nil, nil},
		{"min_auc metric missing", &pb.ValidationSpec{MinAuc: 0.85}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) { delete(a.Metrics, "auc") })}, nil,
			[]string{"site north: no auc reported, needed for min_auc 0.85"}},
		{"min_sensitivity pass", &pb.ValidationSpec{MinSensitivity: 0.8}, two, good, nil, nil},
		{"min_sensitivity fail", &pb.ValidationSpec{MinSensitivity: 0.85}, []string{"north"}, good[1:], nil,
			[]string{"site north: sensitivity 0.800 < min_sensitivity 0.85"}},
		{"sensitivity at specificity fail", &pb.ValidationSpec{MinSensitivity: 0.8, AtSpecificity: 0.95}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) { a.Metrics["sensitivity_at_specificity"] = est(0.7) })}, nil,
			[]string{"site north: sensitivity_at_specificity 0.700 < min_sensitivity 0.8 (at specificity 0.95)"}},
		{"sensitivity at specificity pass", &pb.ValidationSpec{MinSensitivity: 0.8, AtSpecificity: 0.95}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) { a.Metrics["sensitivity_at_specificity"] = est(0.81) })}, nil, nil},
		{"sensitivity at specificity missing", &pb.ValidationSpec{MinSensitivity: 0.8, AtSpecificity: 0.95}, []string{"north"}, good[1:], nil,
			[]string{"site north: no sensitivity_at_specificity reported, needed for min_sensitivity 0.8 (at specificity 0.95)"}},
		{"min_dice pass", &pb.ValidationSpec{MinDice: 0.7}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) { a.Metrics["dice"] = est(0.75) })}, nil, nil},
		{"min_dice fail", &pb.ValidationSpec{MinDice: 0.7}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) { a.Metrics["dice"] = est(0.6512) })}, nil,
			[]string{"site north: dice 0.651 < min_dice 0.7"}},
		{"regression pass", &pb.ValidationSpec{MaxAucRegression: 0.05}, two, good, prev, nil},
		{"regression fail", &pb.ValidationSpec{MaxAucRegression: 0.02}, two, good, prev,
			[]string{"mean auc over validation sites 0.890 is 0.030 below v3's 0.920 > max_auc_regression 0.02"}},
		{"regression, no previous version", &pb.ValidationSpec{MaxAucRegression: 0.02}, two, good, nil, nil},
		{"subgroup gap pass", &pb.ValidationSpec{MaxSubgroupGap: 0.05}, two, good, nil, nil},
		{"subgroup gap fail", &pb.ValidationSpec{MaxSubgroupGap: 0.05}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) {
				a.Subgroups = append(a.Subgroups, evaluation.Subgroup{Field: "sex", Value: "X", Examples: 20, Metrics: map[string]evaluation.Estimate{"auc": est(0.8)}})
			})}, nil,
			[]string{"site north: auc gap 0.120 between sex=X (0.800) and sex=M (0.920) > max_subgroup_gap 0.05"}},
		{"suppressed subgroups do not count", &pb.ValidationSpec{MaxSubgroupGap: 0.05}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) {
				a.Subgroups = append(a.Subgroups, evaluation.Subgroup{Field: "sex", Value: "X", Suppressed: true, Metrics: map[string]evaluation.Estimate{"auc": est(0.3)}})
			})}, nil, nil},
		{"gaps are within one field", &pb.ValidationSpec{MaxSubgroupGap: 0.05}, []string{"north"},
			[]Validation{with(v("north", 0.9), func(a *evaluation.Assessment) {
				a.Subgroups = append(a.Subgroups, evaluation.Subgroup{Field: "scanner", Value: "A", Examples: 50, Metrics: map[string]evaluation.Estimate{"auc": est(0.7)}})
			})}, nil, nil},
		{"several failures", &pb.ValidationSpec{MinAuc: 0.95, MinSensitivity: 0.9}, two, good[:1], nil,
			[]string{"site st-marys: auc 0.900 < min_auc 0.95", "site st-marys: sensitivity 0.800 < min_sensitivity 0.9",
				"no signed validation receipt from site north"}},
	} {
		got := Decide(tc.gates, tc.sites, tc.results, tc.prev)
		want := Gate{State: GatePassed}
		if tc.want != nil {
			want = Gate{State: GateRejected, Reasons: tc.want}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q %q\nwant %q %q", tc.name, got.State, got.Reasons, want.State, want.Reasons)
		}
	}
}
