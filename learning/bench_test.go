package learning

import (
	"context"
	"testing"
)

// BenchmarkTrainCNN28 trains the default cnn (28×28 grey, width 16) with
// Adam on batches of 64, the configuration `concord-bench train` compares
// with PyTorch; it reports samples/s.
func BenchmarkTrainCNN28(b *testing.B) {
	m, err := New(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2}, 1)
	if err != nil {
		b.Fatal(err)
	}
	ds := randomData(256, 1, 28, 28, 2, 5)
	cfg := TrainConfig{Steps: 4, BatchSize: 64}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Train(context.Background(), ds, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*4*64)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkPredictCNN28(b *testing.B) {
	m, _ := New(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2}, 1)
	ds := randomData(256, 1, 28, 28, 2, 5)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Predict(ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkTrainUNet64 trains the U-Net (width 8) on 64×64 images, batch 8.
func BenchmarkTrainUNet64(b *testing.B) {
	m, err := New(Spec{Arch: "unet", Channels: 1, Height: 64, Width: 64}, 1)
	if err != nil {
		b.Fatal(err)
	}
	ds := discs(16, 64, 3)
	cfg := TrainConfig{Steps: 2, BatchSize: 8}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Train(context.Background(), ds, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*2*8)/b.Elapsed().Seconds(), "samples/s")
}
