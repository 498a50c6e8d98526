package aggregation

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// ServerOptimizer turns the current global model and the mean of the client
// models of a round into the next global model.
//
// Step never modifies its arguments and changes the optimiser's state only
// when it succeeds. MarshalState/UnmarshalState carry that state (the
// adaptive moments) across coordinator restarts; the coordinator persists it
// in the same transaction as the global model it belongs to.
type ServerOptimizer interface {
	// Name is the strategy, as in Config.Strategy.
	Name() string
	// Step returns the next global model. clientMean is the weighted mean
	// of the client models (or the decrypted secure-aggregation mean, or
	// the robust mean), with the same length as global.
	Step(global, clientMean []float32) ([]float32, error)
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}

// New returns the server optimiser for cfg, after applying defaults and
// validating it.
//
// fedavg, fedprox, median and trimmed-mean return an optimiser whose Step
// is the client mean itself (server learning rate 1): FedProx differs from
// FedAvg only in the local objective (cfg.ProxMu), and the robust rules
// differ only in how the mean is formed (Config.RobustMean).
// fedadam, fedyogi and fedadagrad follow Algorithm 2 of Reddi et al. 2021.
func New(cfg Config) (ServerOptimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	switch cfg.Strategy {
	case StrategyFedAdam, StrategyFedYogi, StrategyFedAdagrad:
		return &adaptive{kind: cfg.Strategy, eta: cfg.ServerLR, beta1: cfg.Beta1, beta2: cfg.Beta2, tau: cfg.Tau}, nil
	default:
		return &meanStep{name: cfg.Strategy}, nil
	}
}

// meanStep adopts the client mean as the new global model.
type meanStep struct{ name string }

func (o *meanStep) Name() string { return o.name }

func (o *meanStep) Step(global, clientMean []float32) ([]float32, error) {
	if err := checkStepInputs(global, clientMean); err != nil {
		return nil, err
	}
	return append([]float32(nil), clientMean...), nil
}

func (o *meanStep) MarshalState() ([]byte, error) { return encodeState(o.name, 0, nil, nil), nil }

func (o *meanStep) UnmarshalState(b []byte) error {
	_, m, _, err := decodeState(o.name, b)
	if err != nil {
		return err
	}
	if len(m) != 0 {
		return fmt.Errorf("%s carries no moments, state has %d: %w", o.name, len(m), ErrState)
	}
	return nil
}

// adaptive is FedAdagrad, FedAdam or FedYogi (Reddi et al. 2021, Alg. 2):
//
//	Δ = clientMean − global
//	m = β₁·m + (1−β₁)·Δ
//	FedAdagrad: v = v + Δ²
//	FedAdam:    v = β₂·v + (1−β₂)·Δ²
//	FedYogi:    v = v − (1−β₂)·Δ²·sign(v − Δ²)
//	global' = global + η·m / (√v + τ)
//
// m starts at 0 and v at τ², as in the paper's pseudocode (v₋₁ ≥ τ²). There
// is no bias correction: the paper has none. Moments are kept in float64;
// the model is float32.
type adaptive struct {
	kind                   string
	eta, beta1, beta2, tau float64
	rounds                 uint64
	m, v                   []float64
	spareM, spareV         []float64
}

func (o *adaptive) Name() string { return o.kind }

func (o *adaptive) Step(global, clientMean []float32) ([]float32, error) {
	if err := checkStepInputs(global, clientMean); err != nil {
		return nil, err
	}
	n := len(global)
	m, v := o.m, o.v
	if m == nil {
		m = make([]float64, n)
		v = make([]float64, n)
		for i := range v {
			v[i] = o.tau * o.tau
		}
	} else if len(m) != n {
		return nil, fmt.Errorf("%s state holds %d parameters, model has %d: %w", o.kind, len(m), n, ErrLength)
	}
	// Write the new moments into spare buffers and swap them in only when
	// the whole step succeeded, so a failed step leaves the state as it was.
	if len(o.spareM) != n {
		o.spareM, o.spareV = make([]float64, n), make([]float64, n)
	}
	nm, nv := o.spareM, o.spareV
	out := make([]float32, n)
	for i := range n {
		d := float64(clientMean[i]) - float64(global[i])
		d2 := d * d
		nm[i] = o.beta1*m[i] + (1-o.beta1)*d
		switch o.kind {
		case StrategyFedAdagrad:
			nv[i] = v[i] + d2
		case StrategyFedAdam:
			nv[i] = o.beta2*v[i] + (1-o.beta2)*d2
		case StrategyFedYogi:
			nv[i] = v[i] - (1-o.beta2)*d2*sign(v[i]-d2)
		}
		g := float64(global[i]) + o.eta*nm[i]/(math.Sqrt(nv[i])+o.tau)
		if !finite64(g) || math.Abs(g) > math.MaxFloat32 || !finite64(nv[i]) {
			return nil, fmt.Errorf("%s step at parameter %d gives %v: %w", o.kind, i, g, ErrNotFinite)
		}
		out[i] = float32(g)
	}
	o.m, o.v, o.spareM, o.spareV = nm, nv, m, v
	o.rounds++
	return out, nil
}

func (o *adaptive) MarshalState() ([]byte, error) {
	return encodeState(o.kind, o.rounds, o.m, o.v), nil
}

func (o *adaptive) UnmarshalState(b []byte) error {
	rounds, m, v, err := decodeState(o.kind, b)
	if err != nil {
		return err
	}
	for i := range v {
		if !finite64(m[i]) || !finite64(v[i]) || v[i] < 0 {
			return fmt.Errorf("%s state: moment %d is invalid (m=%v, v=%v): %w", o.kind, i, m[i], v[i], ErrState)
		}
	}
	if len(m) == 0 {
		m, v = nil, nil
	}
	o.rounds, o.m, o.v = rounds, m, v
	return nil
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func checkStepInputs(global, clientMean []float32) error {
	if len(global) != len(clientMean) {
		return fmt.Errorf("global model has %d parameters, client mean has %d: %w", len(global), len(clientMean), ErrLength)
	}
	if len(global) == 0 {
		return fmt.Errorf("empty model: %w", ErrEmpty)
	}
	for i := range global {
		if !finite32(global[i]) {
			return fmt.Errorf("global model parameter %d is %v: %w", i, global[i], ErrNotFinite)
		}
		if !finite32(clientMean[i]) {
			return fmt.Errorf("client mean parameter %d is %v: %w", i, clientMean[i], ErrNotFinite)
		}
	}
	return nil
}

// State encoding, little-endian: "CCSO", version u32, name length u32,
// name, rounds u64, n u64, m [n]f64, v [n]f64, CRC-32 of all before it.
const (
	soMagic   = "CCSO"
	soVersion = 1
)

func encodeState(name string, rounds uint64, m, v []float64) []byte {
	b := make([]byte, 0, 32+len(name)+16*len(m))
	b = append(b, soMagic...)
	b = binary.LittleEndian.AppendUint32(b, soVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint64(b, rounds)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(m)))
	for _, x := range m {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func decodeState(want string, b []byte) (rounds uint64, m, v []float64, err error) {
	bad := func(format string, a ...any) (uint64, []float64, []float64, error) {
		return 0, nil, nil, fmt.Errorf("%s state: "+format+": %w", append(append([]any{want}, a...), ErrState)...)
	}
	if len(b) < 12+4 {
		return bad("%d bytes is too short", len(b))
	}
	body, trailer := b[:len(b)-4], b[len(b)-4:]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(trailer) {
		return bad("checksum mismatch")
	}
	if string(body[:4]) != soMagic {
		return bad("bad magic %q", body[:4])
	}
	if ver := binary.LittleEndian.Uint32(body[4:]); ver != soVersion {
		return bad("encoding version %d, want %d", ver, soVersion)
	}
	nl := uint64(binary.LittleEndian.Uint32(body[8:]))
	p := body[12:]
	if nl > uint64(len(p)) {
		return bad("name length %d overruns the data", nl)
	}
	if name := string(p[:nl]); name != want {
		return bad("state belongs to strategy %q", name)
	}
	p = p[nl:]
	if len(p) < 16 {
		return bad("truncated header")
	}
	rounds = binary.LittleEndian.Uint64(p)
	n := binary.LittleEndian.Uint64(p[8:])
	p = p[16:]
	if n > uint64(len(p)) || uint64(len(p)) != 16*n {
		return bad("%d bytes do not hold %d moments", len(p), n)
	}
	m = make([]float64, n)
	v = make([]float64, n)
	for i := range m {
		m[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	p = p[8*n:]
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	return rounds, m, v, nil
}
