package serving

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// ErrRefused wraps every reason a version is not served.
var ErrRefused = errors.New("refusing to serve")

// Model is a verified, approved version ready to run: the job's own
// network and imaging pipeline, and the decision threshold it was
// validated at.
type Model struct {
	Manifest       registry.Manifest
	ManifestSHA256 string
	Spec           *pb.JobSpec
	Pipeline       imaging.Pipeline
	Net            *learning.Model
	// Threshold is the binary decision threshold the version's validation
	// receipts were scored at (0.5 when none says otherwise); a
	// segmentation model's pixels are foreground from it on.
	Threshold float64
}

// Segments says whether the version is a segmentation model (the unet or a
// declared segmenter): its result is a DICOM SEG and the segmented size,
// not a class.
func (m *Model) Segments() bool { return m.Net.Segments() }

// VerifyVersion checks dir as `concordctl models verify` does and also
// that the version is published with its gates passed: what a hospital may
// approve. It returns the manifest and the SHA-256 of manifest.json.
func VerifyVersion(dir string, trust *audit.Trust) (registry.Manifest, string, error) {
	m, err := registry.VerifyDir(dir, trust)
	if err != nil {
		return m, "", fmt.Errorf("%w: %s does not verify: %w", ErrRefused, dir, err)
	}
	if m.Status != registry.StatusPublished || m.Gate.State != registry.GatePassed {
		why := strings.Join(m.Gate.Reasons, "; ")
		if why == "" {
			why = "no reason recorded"
		}
		return m, "", fmt.Errorf("%w: version %s is %s (gate %s: %s), not published", ErrRefused, m.Version, m.Status, m.Gate.State, why)
	}
	b, err := os.ReadFile(filepath.Join(dir, registry.FileManifest))
	if err != nil {
		return m, "", err
	}
	sum := sha256.Sum256(b)
	return m, hex.EncodeToString(sum[:]), nil
}

// LoadApproved picks, among the versions under modelsDir (one folder per
// version, named by it, as `concordctl models download VERSION --out
// modelsDir/VERSION` writes), the latest published version the hospital
// approved, and builds it. It fails closed: an approved version whose
// folder does not verify, whose manifest is not the one approved, or
// whose pipeline this agent computes differently stops serving with that
// reason rather than falling back silently.
func LoadApproved(modelsDir string, trust *audit.Trust, approvals []Approval) (*Model, error) {
	if len(approvals) == 0 {
		return nil, fmt.Errorf("%w: no version is approved at this site: run `site-agent models approve VERSION` after checking its model card", ErrRefused)
	}
	type cand struct {
		m   registry.Manifest
		sum string
		dir string
	}
	var found []cand
	var missing []string
	for _, a := range approvals {
		dir := filepath.Join(modelsDir, a.Version)
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, a.Version)
			continue
		}
		m, sum, err := VerifyVersion(dir, trust)
		if err != nil {
			return nil, err
		}
		if m.Version != a.Version {
			return nil, fmt.Errorf("%w: folder %s holds version %s: download each version into a folder of its own name", ErrRefused, dir, m.Version)
		}
		if sum != a.ManifestSHA256 {
			return nil, fmt.Errorf("%w: %s: manifest.json has SHA-256 %s…, the approval (by %s) was of %s…: approve the version again after checking it",
				ErrRefused, dir, sum[:16], a.By, a.ManifestSHA256[:min(16, len(a.ManifestSHA256))])
		}
		found = append(found, cand{m, sum, dir})
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: the approved versions (%s) are not in %s: download them with `concordctl models download VERSION --out %s/VERSION`",
			ErrRefused, strings.Join(missing, ", "), modelsDir, modelsDir)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].m.Created.After(found[j].m.Created) })
	c := found[0]
	return build(c.dir, c.m, c.sum)
}

// build makes the runnable model of a verified version. The weights are
// read again and checked against the manifest, so a file swapped after
// verification is not served.
func build(dir string, m registry.Manifest, sum string) (*Model, error) {
	spec := &pb.JobSpec{}
	if err := protojson.Unmarshal(m.Spec, spec); err != nil {
		return nil, fmt.Errorf("%w: version %s: its job spec cannot be read by this agent (%v): upgrade the agent", ErrRefused, m.Version, err)
	}
	pl := jobspec.PipelineConfig(spec)
	if err := pl.Validate(); err != nil {
		return nil, fmt.Errorf("%w: version %s: the job's pipeline: %w", ErrRefused, m.Version, err)
	}
	if h := pl.Hash(); h != m.PipelineHash {
		return nil, fmt.Errorf("%w: version %s was trained through pipeline %s, this agent computes %s for the same spec: its imaging code differs from training's; upgrade the agent to the consortium's version",
			ErrRefused, m.Version, short(m.PipelineHash), short(h))
	}
	net, err := learning.New(jobspec.ModelSpec(spec), spec.GetSeed())
	if err != nil {
		return nil, fmt.Errorf("%w: version %s: build its model: %w", ErrRefused, m.Version, err)
	}
	if got := net.Layout().Hash(); got != m.LayoutHash {
		return nil, fmt.Errorf("%w: version %s: this agent builds layout %s, the version has %s: upgrade the agent", ErrRefused, m.Version, short(got), short(m.LayoutHash))
	}
	raw, err := os.ReadFile(filepath.Join(dir, registry.FileWeights))
	if err != nil {
		return nil, err
	}
	if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != m.WeightsSHA256 {
		return nil, fmt.Errorf("%w: %s changed after it was verified", ErrRefused, filepath.Join(dir, registry.FileWeights))
	}
	w, err := registry.DecodeWeights(raw)
	if err != nil {
		return nil, err
	}
	if err := net.SetWeights(w); err != nil {
		return nil, fmt.Errorf("%w: version %s: %w", ErrRefused, m.Version, err)
	}
	th, err := validatedThreshold(m)
	if err != nil {
		return nil, err
	}
	return &Model{Manifest: m, ManifestSHA256: sum, Spec: spec, Pipeline: pl, Net: net, Threshold: th}, nil
}

// validatedThreshold is the threshold the global model's receipts were
// scored at: the decision the hospital approved is the one validated.
// Receipts that disagree leave no single validated threshold.
func validatedThreshold(m registry.Manifest) (float64, error) {
	th := 0.0
	for _, v := range m.Validation {
		if v.ModelRole != registry.RoleGlobal {
			continue
		}
		t := v.Assessment.Threshold
		if t == 0 {
			t = 0.5
		}
		if th != 0 && t != th {
			return 0, fmt.Errorf("%w: version %s was validated at thresholds %g and %g: no single decision threshold", ErrRefused, m.Version, th, t)
		}
		th = t
	}
	if th == 0 {
		th = 0.5
	}
	return th, nil
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
