package aggregation

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// WeightedSum is the running, sample-weighted sum of site updates for one
// round. It holds O(n) memory whatever the number of sites: the coordinator
// adds each update as it arrives and never keeps N updates.
//
// Accumulation is in float64 with Neumaier's compensated (improved Kahan)
// summation per coordinate, so the mean does not depend measurably on the
// order in which sites report and does not drift with many sites. The weight
// of a site is its sample count.
//
// A site's update may arrive in chunks: call AddChunk(offset, values, w) for
// every chunk with the same weight w, then AddWeight(w) exactly once for the
// site. Add does both for an update received whole. Mean checks that the
// chunks cover every coordinate once per unit of weight added, so a lost or
// repeated chunk is an error instead of a silently wrong model.
//
// A WeightedSum is not safe for concurrent use; the coordinator's round loop
// owns it.
type WeightedSum struct {
	sum     []float64
	comp    []float64 // Neumaier compensation terms
	total   float64   // Σ site weights (AddWeight)
	covered float64   // Σ len(chunk)·weight over chunks (AddChunk)
	sites   uint64
}

// NewWeightedSum returns an empty sum for models of n parameters.
// n must be positive; a non-positive n gives a sum that rejects every chunk.
func NewWeightedSum(n int) *WeightedSum {
	if n < 0 {
		n = 0
	}
	return &WeightedSum{sum: make([]float64, n), comp: make([]float64, n)}
}

// Len is the number of parameters.
func (s *WeightedSum) Len() int { return len(s.sum) }

// TotalWeight is the sum of the site weights added with AddWeight.
func (s *WeightedSum) TotalWeight() float64 { return s.total }

// Sites is the number of AddWeight calls.
func (s *WeightedSum) Sites() int { return int(s.sites) }

// AddChunk adds weight·values to coordinates [offset, offset+len(values)).
// It does not count the weight towards the total: call AddWeight once per
// site. The chunk is validated in full before anything is added, so a
// rejected chunk leaves the sum unchanged.
func (s *WeightedSum) AddChunk(offset int, values []float32, weight float64) error {
	if err := checkWeight(weight); err != nil {
		return err
	}
	if offset < 0 || offset > len(s.sum) || len(values) > len(s.sum)-offset {
		return fmt.Errorf("chunk [%d, %d) outside a model of %d parameters: %w",
			offset, offset+len(values), len(s.sum), ErrLength)
	}
	for i, v := range values {
		if !finite32(v) {
			return fmt.Errorf("chunk value at parameter %d is %v: %w", offset+i, v, ErrNotFinite)
		}
	}
	sum := s.sum[offset : offset+len(values)]
	comp := s.comp[offset : offset+len(values)]
	for i, v := range values {
		x := weight * float64(v)
		t := sum[i] + x
		if math.Abs(sum[i]) >= math.Abs(x) {
			comp[i] += (sum[i] - t) + x
		} else {
			comp[i] += (x - t) + sum[i]
		}
		sum[i] = t
	}
	s.covered += float64(len(values)) * weight
	return nil
}

// AddWeight counts one site of the given weight (its sample count) towards
// the total. Call it once per site, after or before that site's chunks.
func (s *WeightedSum) AddWeight(weight float64) error {
	if err := checkWeight(weight); err != nil {
		return err
	}
	s.total += weight
	s.sites++
	return nil
}

// Add adds one site's whole update with its weight: AddChunk(0, values,
// weight) then AddWeight(weight).
func (s *WeightedSum) Add(values []float32, weight float64) error {
	if len(values) != len(s.sum) {
		return fmt.Errorf("update has %d parameters, model has %d: %w", len(values), len(s.sum), ErrLength)
	}
	if err := s.AddChunk(0, values, weight); err != nil {
		return err
	}
	return s.AddWeight(weight)
}

// Mean returns Σ wᵢ·xᵢ / Σ wᵢ rounded to float32. It fails with ErrEmpty if
// no weight was added and with ErrIncomplete if the chunks added do not
// cover every coordinate once per unit of weight.
func (s *WeightedSum) Mean() ([]float32, error) {
	if s.total <= 0 {
		return nil, fmt.Errorf("no site weight added: %w", ErrEmpty)
	}
	want := float64(len(s.sum)) * s.total
	if math.Abs(s.covered-want) > 1e-9*want {
		return nil, fmt.Errorf("chunks cover %.6g parameter-weights, %d sites of total weight %g need %.6g: %w",
			s.covered, s.sites, s.total, want, ErrIncomplete)
	}
	out := make([]float32, len(s.sum))
	for i := range s.sum {
		m := (s.sum[i] + s.comp[i]) / s.total
		if !finite64(m) || math.Abs(m) > math.MaxFloat32 {
			return nil, fmt.Errorf("mean at parameter %d is %v, outside float32: %w", i, m, ErrNotFinite)
		}
		out[i] = float32(m)
	}
	return out, nil
}

// Reset empties the sum for the next round, keeping its size and memory.
func (s *WeightedSum) Reset() {
	clear(s.sum)
	clear(s.comp)
	s.total, s.covered, s.sites = 0, 0, 0
}

const (
	wsMagic   = "CCWS"
	wsVersion = 1
	wsHeader  = 4 + 4 + 8 + 8 + 8 + 8 // magic, version, n, sites, total, covered
)

// MarshalBinary encodes the running sum so the coordinator can persist a
// round in progress. The encoding is little-endian with a CRC-32 trailer:
// 40 bytes of header, 16 bytes per parameter, 4 bytes of checksum.
func (s *WeightedSum) MarshalBinary() ([]byte, error) {
	n := len(s.sum)
	b := make([]byte, 0, wsHeader+16*n+4)
	b = append(b, wsMagic...)
	b = binary.LittleEndian.AppendUint32(b, wsVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(n))
	b = binary.LittleEndian.AppendUint64(b, s.sites)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.total))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.covered))
	for _, v := range s.sum {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	for _, v := range s.comp {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

// UnmarshalBinary restores a sum written by MarshalBinary, replacing the
// receiver's contents (and size). Corrupt or truncated input is an error
// wrapping ErrState and leaves the receiver unchanged.
func (s *WeightedSum) UnmarshalBinary(data []byte) error {
	if len(data) < wsHeader+4 {
		return fmt.Errorf("weighted sum: %d bytes is shorter than the header: %w", len(data), ErrState)
	}
	body, trailer := data[:len(data)-4], data[len(data)-4:]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(trailer) {
		return fmt.Errorf("weighted sum: checksum mismatch: %w", ErrState)
	}
	if string(body[:4]) != wsMagic {
		return fmt.Errorf("weighted sum: bad magic %q: %w", body[:4], ErrState)
	}
	if v := binary.LittleEndian.Uint32(body[4:]); v != wsVersion {
		return fmt.Errorf("weighted sum: encoding version %d, want %d: %w", v, wsVersion, ErrState)
	}
	n := binary.LittleEndian.Uint64(body[8:])
	if n > uint64(len(body)) || uint64(len(body)) != wsHeader+16*n {
		return fmt.Errorf("weighted sum: %d bytes do not hold %d parameters: %w", len(body), n, ErrState)
	}
	sites := binary.LittleEndian.Uint64(body[16:])
	total := math.Float64frombits(binary.LittleEndian.Uint64(body[24:]))
	covered := math.Float64frombits(binary.LittleEndian.Uint64(body[32:]))
	if !finite64(total) || total < 0 || !finite64(covered) || covered < 0 {
		return fmt.Errorf("weighted sum: weights %v/%v are invalid: %w", total, covered, ErrState)
	}
	sum := make([]float64, n)
	comp := make([]float64, n)
	p := body[wsHeader:]
	for i := range sum {
		sum[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	p = p[8*n:]
	for i := range comp {
		comp[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	s.sum, s.comp, s.total, s.covered, s.sites = sum, comp, total, covered, sites
	return nil
}

func checkWeight(w float64) error {
	if !finite64(w) || w <= 0 {
		return fmt.Errorf("site weight %v must be a positive sample count: %w", w, ErrWeight)
	}
	return nil
}

func finite32(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
func finite64(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
