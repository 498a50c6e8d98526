package extrainer

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/concord-fl/concord/proto/concordpb"
)

// chunkFloats is the number of float32 values per weight chunk (1 MiB), far
// below gRPC's 4 MB default message limit whatever the model size.
const chunkFloats = 1 << 18

// ErrInsecureRemote is returned by Dial for a non-loopback TCP address
// without TLS.
var ErrInsecureRemote = errors.New("refusing an insecure connection to a non-loopback trainer")

// ErrProtocol is returned (wrapped) when the trainer breaks the protocol:
// chunks out of order, a vector of the wrong length, non-finite weights.
var ErrProtocol = errors.New("external trainer broke the protocol")

// Config says where the trainer listens and how to reach it.
type Config struct {
	// Address is "host:port" or "unix:///path/to/socket".
	Address string
	// TLS secures the connection; nil is allowed only for a unix socket or
	// a loopback address.
	TLS *tls.Config
	// Logger receives one line per round; nil uses slog.Default().
	Logger *slog.Logger
}

// Client is a connection to one external trainer. It is safe for
// concurrent use, though a trainer normally runs one round at a time.
type Client struct {
	addr string
	conn *grpc.ClientConn
	rpc  concordpb.TrainerClient
	log  *slog.Logger
}

// Settings are the local-training settings of one round.
type Settings struct {
	Epochs int
	// Steps, when > 0, runs exactly that many batches instead of Epochs.
	Steps     int
	BatchSize int
	Optimizer string // "sgd" or "adam"
	LR        float64
	Momentum  float64 // SGD momentum (PyTorch convention); Adam ignores it
	ProxMu    float64 // FedProx proximal weight; 0 disables it
	Seed      int64
	Augment   bool
	// Shards are the ids of the shards (SyncShards) holding the site's
	// data as the job's pipeline produced it: the site agent's way.
	Shards []string
	// Dataset, instead of Shards, is a MedMNIST-format .npz on the trainer
	// node (relative to the trainer's --data-root when it has one), for
	// benchmarks and protocol tests; site agents do not use it.
	Dataset string
	// Split selects the arrays <split>_images and <split>_labels; "" means
	// "train".
	Split string
	// ClassWeights weights the loss per class (length = classes); nil means
	// unweighted.
	ClassWeights []float64
	// DP, when set, trains with record-level DP-SGD for exactly DP.Steps
	// steps instead of Epochs of BatchSize batches.
	DP *DPSettings
	// Code and CodeSHA256 are a custom model's module and its pinned hash,
	// set exactly when the manifest's arch is "custom"; the trainer checks
	// the hash again before importing the module. The caller sends only
	// code its hospital approved.
	Code       []byte
	CodeSHA256 string
}

// MaxCodeBytes bounds a custom model's module (jobspec.MaxCodeBytes).
const MaxCodeBytes = 256 << 10

// DPSettings are record-level DP-SGD as privacy/dp.SGD and learning's
// Poisson sampling carry it out: each step draws every example with
// probability SampleRate (from a generator the trainer seeds from the OS,
// not from Seed), clips each example's gradient to L2 norm Clip, adds
// N(0, (NoiseMultiplier·Clip)²) per coordinate to the sum and divides it
// by SampleRate·N.
type DPSettings struct {
	SampleRate      float64 // q, in (0, 1]
	Clip            float64 // C > 0
	NoiseMultiplier float64 // σ >= 0
	Steps           int     // steps to run, >= 1
}

// Result is what one round of external training produced.
type Result struct {
	Weights []float32
	Samples int
	Metrics map[string]float64
	Device  string // "cuda" or "cpu"
	// With DP: the steps the trainer took (always Settings.DP.Steps) and
	// the examples its Poisson draws selected over all of them.
	Steps, Drawn int
}

// Info describes a trainer.
type Info struct {
	Version          string
	Device           string
	DeviceName       string
	ManifestVersions []string
	Archs            []string
	// CustomCode: the trainer imports custom models' modules.
	CustomCode bool
}

// Dial connects to the trainer described by cfg. It does not wait for the
// trainer to be up; the first call does.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	_ = ctx // grpc.NewClient connects lazily; ctx is kept for API stability
	if cfg.Address == "" {
		return nil, errors.New("dial trainer: empty address; want host:port or unix:///path")
	}
	target := cfg.Address
	local := false
	if strings.HasPrefix(target, "unix:") {
		if strings.TrimPrefix(strings.TrimPrefix(target, "unix:"), "//") == "" {
			return nil, fmt.Errorf("dial trainer: %q names no socket path", target)
		}
		local = true
	} else {
		host, _, err := net.SplitHostPort(target)
		if err != nil {
			return nil, fmt.Errorf("dial trainer: address %q: %w (want host:port or unix:///path)", target, err)
		}
		ip := net.ParseIP(host)
		local = host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	var creds credentials.TransportCredentials
	switch {
	case cfg.TLS != nil:
		creds = credentials.NewTLS(cfg.TLS)
	case local:
		creds = insecure.NewCredentials()
	default:
		return nil, fmt.Errorf("dial trainer %q: %w; configure TLS or run the trainer on this host", target, ErrInsecureRemote)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("dial trainer %q: %w", target, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{addr: target, conn: conn, rpc: concordpb.NewTrainerClient(conn), log: log}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Info asks the trainer what it can do.
func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.rpc.Info(ctx, &concordpb.TrainerInfoRequest{})
	if err != nil {
		return Info{}, fmt.Errorf("trainer %s info: %w", c.addr, err)
	}
	return Info{Version: r.GetVersion(), Device: r.GetDevice(), DeviceName: r.GetDeviceName(),
		ManifestVersions: r.GetManifestVersions(), Archs: r.GetArchs(), CustomCode: r.GetCustomCode()}, nil
}

// manifest is the part of the layout manifest the client checks.
type manifest struct {
	Version string `json:"version"`
	Arch    string `json:"arch"`
	Params  []struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"`
		Offset int    `json:"offset"`
		Size   int    `json:"size"`
	} `json:"params"`
	Total int `json:"total"`
}

func checkManifest(b []byte, n int, s Settings) error {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("layout manifest: %w", err)
	}
	if m.Version == "" || m.Arch == "" {
		return errors.New("layout manifest has no version or arch")
	}
	switch custom := m.Arch == "custom"; {
	case custom && (len(s.Code) == 0 || len(s.Code) > MaxCodeBytes || len(s.CodeSHA256) != 64):
		return fmt.Errorf("a custom model needs its module (1..%d bytes, %d given) and its 64-digit SHA-256", MaxCodeBytes, len(s.Code))
	case !custom && (len(s.Code) != 0 || s.CodeSHA256 != ""):
		return fmt.Errorf("module code is for arch custom only, not %q", m.Arch)
	}
	off := 0
	for _, p := range m.Params {
		size := 1
		for _, d := range p.Shape {
			if d <= 0 {
				return fmt.Errorf("layout manifest: %q has dimension %d", p.Name, d)
			}
			size *= d
		}
		if p.Offset != off || p.Size != size {
			return fmt.Errorf("layout manifest: %q at offset %d size %d, want %d and %d", p.Name, p.Offset, p.Size, off, size)
		}
		off += size
	}
	if off != m.Total || m.Total == 0 {
		return fmt.Errorf("layout manifest: total %d but parameters add up to %d", m.Total, off)
	}
	if n != m.Total {
		return fmt.Errorf("global weights have %d values, the manifest says %d", n, m.Total)
	}
	return nil
}

func (d *DPSettings) check() error {
	switch {
	case !(d.SampleRate > 0 && d.SampleRate <= 1):
		return fmt.Errorf("DP sample rate %v; want 0 < rate <= 1", d.SampleRate)
	case !(d.Clip > 0) || math.IsInf(d.Clip, 0):
		return fmt.Errorf("DP clip norm %v; want a positive finite number", d.Clip)
	case !(d.NoiseMultiplier >= 0) || math.IsInf(d.NoiseMultiplier, 0):
		return fmt.Errorf("DP noise multiplier %v; want a finite number >= 0", d.NoiseMultiplier)
	case d.Steps < 1 || d.Steps > math.MaxUint32:
		return fmt.Errorf("DP steps %d; need at least 1", d.Steps)
	}
	return nil
}

func (s Settings) check() error {
	if s.DP != nil {
		if err := s.DP.check(); err != nil {
			return err
		}
	}
	switch {
	case s.DP == nil && s.Epochs < 1 && s.Steps < 1:
		return fmt.Errorf("epochs %d and steps %d; need at least 1 of either", s.Epochs, s.Steps)
	case s.Steps < 0 || s.Steps > math.MaxUint32:
		return fmt.Errorf("steps %d out of range", s.Steps)
	case s.Epochs < 0 || s.Epochs > math.MaxUint32:
		return fmt.Errorf("epochs %d out of range", s.Epochs)
	case s.DP == nil && s.BatchSize < 1:
		return fmt.Errorf("batch size %d; need at least 1", s.BatchSize)
	case s.Optimizer != "sgd" && s.Optimizer != "adam":
		return fmt.Errorf("optimizer %q; want sgd or adam", s.Optimizer)
	case !(s.LR > 0) || math.IsInf(s.LR, 0):
		return fmt.Errorf("learning rate %v; need a positive number", s.LR)
	case !(s.Momentum >= 0 && s.Momentum < 1):
		return fmt.Errorf("momentum %v; want 0 <= momentum < 1", s.Momentum)
	case !(s.ProxMu >= 0) || math.IsInf(s.ProxMu, 0):
		return fmt.Errorf("fedprox mu %v; want >= 0", s.ProxMu)
	case (s.Dataset == "") == (len(s.Shards) == 0):
		return errors.New("name either the data's shards or a dataset, not both or neither")
	case len(s.Shards) > MaxShards:
		return fmt.Errorf("%d shards, over the bound of %d", len(s.Shards), MaxShards)
	}
	for i, w := range s.ClassWeights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("class weight %d is %v; want a finite value >= 0", i, w)
		}
	}
	return nil
}

// Train runs one round of local training on the external trainer, starting
// from global. progress, when not nil, receives the trainer's progress lines
// in order. The returned weights have the manifest's length and are finite.
func (c *Client) Train(ctx context.Context, jobID string, round int, manifestJSON []byte, global []float32, s Settings, progress func(string)) (Result, error) {
	if jobID == "" {
		return Result{}, errors.New("external training: empty job id")
	}
	if round < 0 || round > math.MaxUint32 {
		return Result{}, fmt.Errorf("external training: round %d out of range", round)
	}
	if err := checkManifest(manifestJSON, len(global), s); err != nil {
		return Result{}, fmt.Errorf("external training: %w", err)
	}
	if i := firstNonFinite(global); i >= 0 {
		return Result{}, fmt.Errorf("external training: global weight %d is %v", i, global[i])
	}
	if err := s.check(); err != nil {
		return Result{}, fmt.Errorf("external training: settings: %w", err)
	}
	split := s.Split
	if split == "" {
		split = "train"
	}

	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Train(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("external training at %s: open stream: %w", c.addr, err)
	}
	send := func(req *concordpb.TrainRequest) error {
		if err := stream.Send(req); err != nil {
			if errors.Is(err, io.EOF) {
				// The server ended the stream early; its status says why.
				for err = nil; err == nil; {
					_, err = stream.Recv()
				}
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("%w: the trainer closed the stream before taking all weights", ErrProtocol)
				}
			}
			return fmt.Errorf("external training at %s: %w", c.addr, err)
		}
		return nil
	}
	ps := &concordpb.TrainSettings{
		Epochs: uint32(s.Epochs), BatchSize: uint32(max(s.BatchSize, 0)), Optimizer: s.Optimizer,
		LearningRate: s.LR, Momentum: s.Momentum, ProxMu: s.ProxMu, Seed: s.Seed,
		Augment: s.Augment, Dataset: s.Dataset, Split: split, ClassWeights: s.ClassWeights, Shards: s.Shards,
		LocalSteps: uint32(s.Steps),
	}
	if len(s.Shards) > 0 {
		ps.Split = ""
	}
	if s.DP != nil {
		ps.DpSampleRate, ps.DpClip, ps.DpNoiseMultiplier, ps.DpSteps = s.DP.SampleRate, s.DP.Clip, s.DP.NoiseMultiplier, uint32(s.DP.Steps)
	}
	err = send(&concordpb.TrainRequest{Msg: &concordpb.TrainRequest_Start{Start: &concordpb.TrainStart{
		JobId: jobID, Round: uint32(round), Manifest: manifestJSON, Total: uint64(len(global)), Settings: ps,
		Code: s.Code, CodeSha256: s.CodeSHA256,
	}}})
	if err != nil {
		return Result{}, err
	}
	buf := make([]byte, 4*min(chunkFloats, len(global)))
	for off := 0; off < len(global); off += chunkFloats {
		end := min(off+chunkFloats, len(global))
		data := buf[:4*(end-off)]
		for i, v := range global[off:end] {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		err := send(&concordpb.TrainRequest{Msg: &concordpb.TrainRequest_Weights{Weights: &concordpb.WeightChunk{
			Offset: uint64(off), Data: data, Last: end == len(global),
		}}})
		if err != nil {
			return Result{}, err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return Result{}, fmt.Errorf("external training at %s: %w", c.addr, err)
	}

	res := Result{Weights: make([]float32, 0, len(global))}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return Result{}, fmt.Errorf("external training at %s: %w: stream ended without a result", c.addr, ErrProtocol)
		}
		if err != nil {
			return Result{}, fmt.Errorf("external training at %s: %w", c.addr, err)
		}
		switch m := msg.Msg.(type) {
		case *concordpb.TrainResponse_Progress:
			if progress != nil {
				progress(m.Progress.GetMessage())
			}
		case *concordpb.TrainResponse_Weights:
			ch := m.Weights
			if ch.GetOffset() != uint64(len(res.Weights)) || len(ch.GetData())%4 != 0 ||
				len(res.Weights)+len(ch.GetData())/4 > len(global) {
				return Result{}, fmt.Errorf("external training at %s: %w: weight chunk at offset %d with %d bytes after %d of %d values",
					c.addr, ErrProtocol, ch.GetOffset(), len(ch.GetData()), len(res.Weights), len(global))
			}
			for i := 0; i < len(ch.GetData()); i += 4 {
				res.Weights = append(res.Weights, math.Float32frombits(binary.LittleEndian.Uint32(ch.GetData()[i:])))
			}
		case *concordpb.TrainResponse_Result:
			r := m.Result
			if len(res.Weights) != len(global) || r.GetTotal() != uint64(len(global)) {
				return Result{}, fmt.Errorf("external training at %s: %w: result after %d of %d weights (trainer says %d)",
					c.addr, ErrProtocol, len(res.Weights), len(global), r.GetTotal())
			}
			if i := firstNonFinite(res.Weights); i >= 0 {
				return Result{}, fmt.Errorf("external training at %s: %w: weight %d is %v; training diverged, lower the learning rate",
					c.addr, ErrProtocol, i, res.Weights[i])
			}
			if r.GetSamples() == 0 || r.GetSamples() > math.MaxInt32 {
				return Result{}, fmt.Errorf("external training at %s: %w: sample count %d", c.addr, ErrProtocol, r.GetSamples())
			}
			if s.DP != nil {
				// The agent charges its privacy ledger with these numbers; a
				// trainer that ran other steps, or drew more than it could,
				// broke the protocol.
				if r.GetSteps() != uint32(s.DP.Steps) || r.GetDrawn() > r.GetSamples()*uint64(r.GetSteps()) {
					return Result{}, fmt.Errorf("external training at %s: %w: DP-SGD ran %d steps drawing %d examples, asked for %d steps over %d examples",
						c.addr, ErrProtocol, r.GetSteps(), r.GetDrawn(), s.DP.Steps, r.GetSamples())
				}
				res.Steps, res.Drawn = int(r.GetSteps()), int(r.GetDrawn())
			}
			res.Samples = int(r.GetSamples())
			res.Metrics = r.GetMetrics()
			res.Device = r.GetDevice()
			c.log.Info("external training round done", "job", jobID, "round", round, "trainer", c.addr,
				"device", res.Device, "samples", res.Samples, "loss", res.Metrics["loss"], "elapsed", time.Since(start).Round(time.Millisecond))
			return res, nil
		default:
			return Result{}, fmt.Errorf("external training at %s: %w: unknown message %T", c.addr, ErrProtocol, msg.Msg)
		}
	}
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// Supports reports whether the trainer builds models of this manifest
// version and architecture; check it before the first round.
func (i Info) Supports(manifestVersion, arch string) bool {
	return slices.Contains(i.ManifestVersions, manifestVersion) && slices.Contains(i.Archs, arch)
}
