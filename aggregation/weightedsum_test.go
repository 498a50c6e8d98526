package aggregation

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestWeightedSumMean(t *testing.T) {
	// Site A: [1 2 3] with 1 sample; site B: [3 6 9] with 3 samples.
	// Σ w·x = [1+9, 2+18, 3+27] = [10 20 30]; Σ w = 4; mean = [2.5 5 7.5].
	want := []float32{2.5, 5, 7.5}
	tests := []struct {
		name string
		add  func(s *WeightedSum) error
	}{
		{"whole updates", func(s *WeightedSum) error {
			return errors.Join(s.Add([]float32{1, 2, 3}, 1), s.Add([]float32{3, 6, 9}, 3))
		}},
		{"chunks, weight first", func(s *WeightedSum) error {
			return errors.Join(
				s.AddWeight(3), s.AddChunk(2, []float32{9}, 3), s.AddChunk(0, []float32{3, 6}, 3),
				s.AddChunk(0, []float32{1}, 1), s.AddChunk(1, []float32{2, 3}, 1), s.AddWeight(1))
		}},
		{"chunks interleaved across sites", func(s *WeightedSum) error {
			return errors.Join(
				s.AddChunk(0, []float32{1}, 1), s.AddChunk(0, []float32{3}, 3),
				s.AddChunk(1, []float32{6, 9}, 3), s.AddChunk(1, []float32{2, 3}, 1),
				s.AddWeight(1), s.AddWeight(3))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewWeightedSum(3)
			if err := tc.add(s); err != nil {
				t.Fatal(err)
			}
			got, err := s.Mean()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("mean = %v, want %v", got, want)
			}
			if s.Sites() != 2 || s.TotalWeight() != 4 {
				t.Errorf("sites %d weight %v, want 2 and 4", s.Sites(), s.TotalWeight())
			}
		})
	}
}

func TestWeightedSumErrors(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name string
		op   func(s *WeightedSum) error
		want error
	}{
		{"chunk past the end", func(s *WeightedSum) error { return s.AddChunk(2, []float32{1, 2}, 1) }, ErrLength},
		{"negative offset", func(s *WeightedSum) error { return s.AddChunk(-1, []float32{1}, 1) }, ErrLength},
		{"whole update too short", func(s *WeightedSum) error { return s.Add([]float32{1, 2}, 1) }, ErrLength},
		{"NaN value", func(s *WeightedSum) error { return s.AddChunk(0, []float32{1, nan}, 1) }, ErrNotFinite},
		{"Inf value", func(s *WeightedSum) error { return s.AddChunk(0, []float32{float32(math.Inf(1))}, 1) }, ErrNotFinite},
		{"zero weight", func(s *WeightedSum) error { return s.AddChunk(0, []float32{1}, 0) }, ErrWeight},
		{"negative weight", func(s *WeightedSum) error { return s.AddWeight(-2) }, ErrWeight},
		{"NaN weight", func(s *WeightedSum) error { return s.AddWeight(math.NaN()) }, ErrWeight},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewWeightedSum(3)
			if err := s.Add([]float32{1, 1, 1}, 2); err != nil {
				t.Fatal(err)
			}
			before, _ := s.MarshalBinary()
			if err := tc.op(s); !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			after, _ := s.MarshalBinary()
			if !slices.Equal(before, after) {
				t.Error("a rejected input changed the sum")
			}
		})
	}
}

func TestWeightedSumMeanRefusesIncompleteRounds(t *testing.T) {
	tests := []struct {
		name string
		add  func(s *WeightedSum) error
		want error
	}{
		{"nothing added", func(s *WeightedSum) error { return nil }, ErrEmpty},
		{"chunks but no weight", func(s *WeightedSum) error { return s.AddChunk(0, []float32{1, 2, 3}, 1) }, ErrEmpty},
		{"missing chunk", func(s *WeightedSum) error {
			return errors.Join(s.AddChunk(0, []float32{1, 2}, 5), s.AddWeight(5))
		}, ErrIncomplete},
		{"duplicated chunk", func(s *WeightedSum) error {
			return errors.Join(s.AddChunk(0, []float32{1, 2, 3}, 5), s.AddChunk(2, []float32{3}, 5), s.AddWeight(5))
		}, ErrIncomplete},
		{"weight counted twice", func(s *WeightedSum) error {
			return errors.Join(s.Add([]float32{1, 2, 3}, 5), s.AddWeight(5))
		}, ErrIncomplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewWeightedSum(3)
			if err := tc.add(s); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Mean(); !errors.Is(err, tc.want) {
				t.Fatalf("Mean error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWeightedSumCompensatedSummation(t *testing.T) {
	// Σ w·x = 3e38·1e10 + 1·1 − 3e38·1e10 = 1 exactly, Σ w = 2e10 + 1.
	// Plain float64 loses the 1 (3e48 + 1 == 3e48) and returns 0; Neumaier's
	// compensation keeps it: mean = 1/(2e10+1) ≈ 5e-11.
	s := NewWeightedSum(1)
	big := float32(3e38)
	if err := errors.Join(s.Add([]float32{big}, 1e10), s.Add([]float32{1}, 1), s.Add([]float32{-big}, 1e10)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Mean()
	if err != nil {
		t.Fatal(err)
	}
	want := float32(1 / (2e10 + 1))
	if got[0] != want {
		t.Errorf("mean = %g, want %g", got[0], want)
	}
}

func TestWeightedSumBinaryRoundTrip(t *testing.T) {
	// A round interrupted after site A, persisted, restored, then finished,
	// gives the same bits as the same round done in one go.
	a, b := []float32{0.1, -0.2, 0.3, 4e-7}, []float32{1.5, 2.25, -3, 1e6}
	whole := NewWeightedSum(4)
	if err := errors.Join(whole.Add(a, 120), whole.Add(b, 37)); err != nil {
		t.Fatal(err)
	}
	want, err := whole.Mean()
	if err != nil {
		t.Fatal(err)
	}

	first := NewWeightedSum(4)
	if err := errors.Join(first.Add(a, 120), first.AddChunk(0, b[:1], 37)); err != nil {
		t.Fatal(err)
	}
	data, err := first.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var restored WeightedSum
	if err := restored.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(restored.AddChunk(1, b[1:], 37), restored.AddWeight(37)); err != nil {
		t.Fatal(err)
	}
	got, err := restored.Mean()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || restored.Sites() != 2 || restored.Len() != 4 {
		t.Errorf("restored mean %v (sites %d), want %v (sites 2)", got, restored.Sites(), want)
	}

	for name, corrupt := range map[string][]byte{
		"empty":     nil,
		"truncated": data[:len(data)-9],
		"bit flip":  flipByte(data, 50),
		"bad magic": flipByte(data, 0),
	} {
		if err := restored.UnmarshalBinary(corrupt); !errors.Is(err, ErrState) {
			t.Errorf("%s: error = %v, want ErrState", name, err)
		}
	}
	if got2, err := restored.Mean(); err != nil || !slices.Equal(got2, want) {
		t.Error("a failed UnmarshalBinary changed the sum")
	}

	restored.Reset()
	if _, err := restored.Mean(); !errors.Is(err, ErrEmpty) {
		t.Errorf("after Reset, Mean error = %v, want ErrEmpty", err)
	}
}

func flipByte(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0xff
	return c
}

func FuzzWeightedSumUnmarshal(f *testing.F) {
	s := NewWeightedSum(3)
	_ = s.Add([]float32{1, 2, 3}, 4)
	data, _ := s.MarshalBinary()
	f.Add(data)
	f.Add([]byte("CCWS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		var w WeightedSum
		if err := w.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := w.MarshalBinary()
		if err != nil || !slices.Equal(out, b) {
			t.Fatalf("accepted input does not round-trip")
		}
	})
}

func BenchmarkWeightedSumAddChunk(b *testing.B) {
	const n = 1 << 20 // about 1M parameters
	for _, chunk := range []int{n, 64 << 10} {
		b.Run(map[int]string{n: "whole-1M", 64 << 10: "chunks-64K"}[chunk], func(b *testing.B) {
			s := NewWeightedSum(n)
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(i%1000) * 1e-3
			}
			b.SetBytes(4 * n)
			b.ReportAllocs()
			for b.Loop() {
				for off := 0; off < n; off += chunk {
					if err := s.AddChunk(off, v[off:off+chunk], 17); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
