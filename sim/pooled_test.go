package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grouped is blobs with de-identified sex and age band groups, some
// unknown.
func grouped(n int, seed uint64) learning.Dataset {
	ds := blobs(n, seed)
	sexes := []string{"F", "M", "O", ""}
	ages := []string{"0-17", "18-39", "40-64", "65+", "", "40-64"}
	ds.Groups = map[string][]string{"sex": make([]string, n), "age": make([]string, n)}
	for i := range n {
		ds.Groups["sex"][i] = sexes[(i/2+int(seed))%len(sexes)]
		ds.Groups["age"][i] = ages[(i/3+int(seed))%len(ages)]
	}
	return ds
}

// startPooled runs a secure job with real training and validation agents.
func startPooled(t *testing.T, validators []string) (*Federation, context.Context, *pb.Job, map[string]learning.Dataset) {
	t.Helper()
	f, ctx := startFederation(t)
	data := map[string]learning.Dataset{}
	for i, name := range []string{"site-a", "site-b"} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(48, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range validators {
		data[name] = grouped(60+10*i, uint64(10+i))
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: data[name]}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 2+len(validators)); err != nil {
		t.Fatal(err)
	}
	job := submit(t, ctx, f, "name: pooled\nrounds: 1\nmin_sites: 2\nvalidation_sites: ["+strings.Join(validators, ", ")+
		"]\nround_deadline: 60s\nvalidation: {min_subgroup_count: 1, receipt_deadline: 60s}\n")
	return f, ctx, watchToEnd(t, ctx, f, job.Id), data
}

// TestPooledSubgroupCounts: a secure job's two validation sites hold key
// shares, never train, and encrypt their per-subgroup confusion counts;
// only the sum is decrypted, and it equals the sum of what each site's
// data gives with the final model.
func TestPooledSubgroupCounts(t *testing.T) {
	validators := []string{"site-v1", "site-v2"}
	f, ctx, final, data := startPooled(t, validators)
	p := final.Pooled
	if p == nil || p.State != "decrypted" || strings.Join(p.Sites, ",") != "site-v1,site-v2" {
		t.Fatalf("pooled counts: %v (gate %v, state %s: %s, failures %v)", p, final.Gate, final.State, final.Reason, final.Failures)
	}
	for _, r := range final.Rounds {
		for _, s := range r.Contributors {
			if strings.HasPrefix(s, "site-v") {
				t.Fatalf("validation site %s trained in round %d", s, r.Round)
			}
		}
	}

	// The expected sum, from the same data and the final model.
	weights, err := fetchModel(ctx, f.Admin, final.Id+"@1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := learning.New(jobspec.ModelSpec(final.Spec), final.Spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetWeights(weights); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int{} // "field=value" -> counts
	add := func(key string, conf map[string]int) {
		if want[key] == nil {
			want[key] = map[string]int{}
		}
		for k, v := range conf {
			want[key][k] += v
		}
	}
	for _, v := range validators {
		ds := data[v]
		out, err := m.Predict(ds)
		if err != nil {
			t.Fatal(err)
		}
		scores := make([]float64, ds.N)
		for i := range scores {
			scores[i] = min(max(float64(out[2*i+1]), 0), 1)
		}
		as, err := evaluation.AssessBinary(scores, ds.Y, ds.Groups, evaluation.AssessOptions{MinSubgroup: 1})
		if err != nil {
			t.Fatal(err)
		}
		known := map[string]map[string]int{"sex": {}, "age": {}}
		for _, g := range as.Subgroups {
			add(g.Field+"="+g.Value, g.Confusion)
			for k, n := range g.Confusion {
				known[g.Field][k] += n
			}
		}
		for _, field := range []string{"sex", "age"} {
			unknown := map[string]int{}
			for k, n := range as.Confusion {
				unknown[k] = n - known[field][k]
			}
			add(field+"=", unknown)
		}
	}
	if len(want) != len(evaluation.PooledCells) || len(p.Cells) != len(want) {
		t.Fatalf("%d pooled cells, want %d: %v", len(p.Cells), len(want), p.Cells)
	}
	for _, c := range p.Cells {
		w := want[c.Field+"="+c.Value]
		if c.Suppressed || c.Examples != uint64(w["tp"]+w["fp"]+w["tn"]+w["fn"]) {
			t.Fatalf("cell %s=%q: %v, want %v", c.Field, c.Value, c, w)
		}
		for _, k := range []string{"tp", "fp", "tn", "fn"} {
			if c.Confusion[k] != uint64(w[k]) {
				t.Fatalf("cell %s=%q: %s = %d, the sites' data gives %d", c.Field, c.Value, k, c.Confusion[k], w[k])
			}
		}
		if tp, fn := w["tp"], w["fn"]; tp+fn > 0 {
			e, _ := evaluation.Wilson(tp, tp+fn)
			if c.Metrics["sensitivity"] != e.Value || c.Lower["sensitivity"] != e.Lower {
				t.Fatalf("cell %s=%q: sensitivity %v [%v], want %v", c.Field, c.Value, c.Metrics["sensitivity"], c.Lower["sensitivity"], e)
			}
		}
	}

	// The signed manifest carries the pooled figures.
	models, err := f.Admin.ListModels(ctx, &pb.ListModelsRequest{JobId: final.Id, IncludeRejected: true})
	if err != nil || len(models.Models) != 1 {
		t.Fatalf("models of the job: %v, %v", models, err)
	}
	man, _, err := registry.Inspect(models.Models[0].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if man.Pooled == nil || man.Pooled.State != "decrypted" || len(man.Pooled.Cells) != len(p.Cells) || len(man.Pooled.Sites) != 2 {
		t.Fatalf("manifest's pooled section: %+v", man.Pooled)
	}

	// The coordinator's store keeps the decrypted sum only: no site's
	// encrypted counts or decryption shares of the pool remain, and no
	// pooled record names a single site's counts.
	if err := f.StopCoordinator(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(f.StatePath(), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		// The job record holds the pool, persisted: the sum's figures and
		// the contributors, nothing per site.
		var rec struct {
			Pooled struct {
				State        string            `json:"state"`
				Contributors []string          `json:"contributors"`
				Cells        []json.RawMessage `json:"cells"`
			} `json:"pooled"`
		}
		if err := json.Unmarshal(tx.Bucket([]byte("jobs")).Get([]byte(final.Id)), &rec); err != nil {
			return err
		}
		if rec.Pooled.State != "decrypted" || len(rec.Pooled.Contributors) != 2 || len(rec.Pooled.Cells) != len(p.Cells) {
			t.Errorf("the stored pool: %+v", rec.Pooled)
		}
		return tx.ForEach(func(bucket []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, _ []byte) error {
				if bytes.Contains(k, []byte("validation-counts")) || bytes.Contains(k, []byte("/1073741825/")) {
					t.Errorf("the store keeps %s/%s after the pool was decrypted", bucket, k)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPooledSingleContributor: with one validation site, pooling would
// reveal that site's counts, so nothing is decrypted and the job says so;
// the gate still decides on the receipt.
func TestPooledSingleContributor(t *testing.T) {
	f, ctx, final, _ := startPooled(t, []string{"site-v1"})
	p := final.Pooled
	if p == nil || p.State != "unavailable" || !strings.Contains(p.Reason, "only contributor") || len(p.Cells) != 0 {
		t.Fatalf("pooled counts with one validation site: %v", p)
	}
	if final.Gate == nil || final.Gate.State == "pending" || final.ModelVersion == "" {
		t.Fatalf("gate %v, model %q", final.Gate, final.ModelVersion)
	}
	// A closed pool takes no more counts, from anyone.
	x := newRawSite(t, ctx, f, "site-x")
	err := x.send(ctx, &pb.UploadHeader{JobId: final.Id, Round: 1<<30 | 1, Kind: pb.UploadKind_UPLOAD_KIND_VALIDATION_COUNTS,
		Nonce: make([]byte, 16)}, make([]byte, 64))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("counts sent to a closed pool: %v", err)
	}
}
