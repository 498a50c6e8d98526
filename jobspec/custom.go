package jobspec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Custom models: model.arch custom ships a consortium's PyTorch module
// (model.code.file) with the job, pinned by model.code.sha256, and declares
// its parameters (model.layout, as `trainer.py layout` prints them). The job
// file names the module; ParseFile reads it next to the job file into the
// spec, so the module travels with the job and the coordinator never reads
// a path. Validate checks the bytes against the pin wherever the spec
// arrives: a file changed after it was pinned (and after hospitals approved
// its hash) is refused at submission and again at every site.
const ArchCustom = learning.ArchCustom

// MaxCodeBytes bounds a custom model's module: one Python file defining a
// network, not a package with weights inside.
const MaxCodeBytes = 256 << 10

// maxJobFileBytes bounds the job file ParseFile reads.
const maxJobFileBytes = 4 << 20

// codeFile is model.code in a job file.
type codeFile struct {
	File   string `yaml:"file"`
	SHA256 string `yaml:"sha256"`
}

// customParamFile is one entry of model.layout in a job file.
type customParamFile struct {
	Name  string   `yaml:"name"`
	Shape []uint32 `yaml:"shape"`
}

func customToWire(ls []customParamFile) []*pb.CustomParam {
	var out []*pb.CustomParam
	for _, l := range ls {
		out = append(out, &pb.CustomParam{Name: l.Name, Shape: l.Shape})
	}
	return out
}

func customToLearning(ls []*pb.CustomParam) []learning.CustomParam {
	var out []learning.CustomParam
	for _, l := range ls {
		p := learning.CustomParam{Name: l.GetName()}
		for _, d := range l.GetShape() {
			p.Shape = append(p.Shape, int(d))
		}
		out = append(out, p)
	}
	return out
}

// ParseFile reads the job file at path, and for a custom model the module
// model.code.file names (relative to the job file's folder), then applies
// defaults and validates, like Parse.
func ParseFile(path string) (*pb.JobSpec, error) {
	data, err := readBounded(path, maxJobFileBytes)
	if err != nil {
		return nil, err
	}
	spec, err := decode(data)
	if err != nil {
		return nil, err
	}
	if name := spec.GetModel().GetCodeFile(); name != "" {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		if spec.Model.Code, err = readBounded(p, MaxCodeBytes); err != nil {
			return nil, fmt.Errorf("model.code.file: %w", err)
		}
	}
	Defaults(spec)
	if err := Validate(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}

// CodeSHA256 is the lowercase hex SHA-256 of a module's bytes, the form
// model.code.sha256 pins and sites approve.
func CodeSHA256(code []byte) string {
	s := sha256.Sum256(code)
	return hex.EncodeToString(s[:])
}

// ErrCodeChanged is returned (wrapped) by CheckCode when a module's bytes
// do not hash to the job's pin.
var ErrCodeChanged = errors.New("the custom model's code does not match the SHA-256 the job pins")

// CheckCode checks that a custom model's bytes hash to its pin. It is the
// check every holder of the bytes repeats: concordctl, the coordinator and
// each site agent.
func CheckCode(m *pb.ModelSpec) error {
	if len(m.GetCode()) == 0 {
		return fmt.Errorf("model.code: the job carries no module: name it in model.code.file and submit with `concordctl jobs submit JOB.yaml`, which reads it next to the job file")
	}
	if got := CodeSHA256(m.GetCode()); got != m.GetCodeSha256() {
		return fmt.Errorf("%w: model.code.file %s hashes to %s, the job pins %s: the file changed since it was pinned; review the change, "+
			"then pin the new hash in model.code.sha256 (every site must approve it again)", ErrCodeChanged, quote(bounded(m.GetCodeFile(), 64)),
			got, quote(bounded(m.GetCodeSha256(), 64)))
	}
	return nil
}

// customModel checks what the job spec decides for a custom model; the
// parameter list is checked by learning (ParamCount, after this).
func (v *validator) customModel(m *pb.ModelSpec) bool {
	ok := true
	if len(m.Code) > MaxCodeBytes {
		v.bad("model.code is %d bytes: at most %d (one Python file defining the network)", len(m.Code), MaxCodeBytes)
		ok = false
	} else if err := CheckCode(m); err != nil {
		v.bad("%w", err)
		ok = false
	}
	if len(m.CodeFile) > 255 {
		v.bad("model.code.file is %d bytes long: at most 255", len(m.CodeFile))
		ok = false
	}
	if n := len(m.CustomLayout); n == 0 || n > learning.MaxCustomParams {
		v.bad("model.layout has %d entries: a custom model declares its 1..%d parameters in order; print them with "+
			"`python3 deploy/trainer/trainer.py layout --code FILE --channels C --height H --width W --classes K`", n, learning.MaxCustomParams)
		ok = false
	}
	if m.BaseWidth != 0 || m.Norm != "" || len(m.Layers) != 0 {
		v.bad("model.base_width, model.norm and model.layers are for the built-in architectures: a custom module defines its own network")
		ok = false
	}
	for _, side := range []struct {
		field string
		x     uint32
	}{{"model.height", m.Height}, {"model.width", m.Width}} {
		ok = v.uintIn(side.field, uint64(side.x), 1, maxGraphSide) && ok
	}
	return v.uintIn("model.classes", uint64(m.Classes), 2, maxClasses) && ok
}

// customJob refuses what a custom model's job asks of site agents that they
// do not do: score the model, which only an approved trainer runs.
func (v *validator) customJob(s *pb.JobSpec) {
	if s.GetModel().GetArch() != ArchCustom {
		return
	}
	if len(s.ValidationSites) != 0 || s.Mode == ModeLeaveOneSiteOut {
		v.bad("validation_sites and mode leave-one-site-out need site agents to score the model, and they do not run custom models: " +
			"remove them (sites do not score custom models in this version)")
	}
}

// customFieldsAbsent refuses the custom fields on another architecture.
func (v *validator) customFieldsAbsent(m *pb.ModelSpec) bool {
	if len(m.Code) != 0 || m.CodeSha256 != "" || m.CodeFile != "" || len(m.CustomLayout) != 0 {
		v.bad("model.code and model.layout are set for arch %s: they belong to arch custom; remove them or use arch custom", quote(m.Arch))
		return false
	}
	return true
}

// bounded shortens a string from outside for an error message.
func bounded(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
