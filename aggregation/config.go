package aggregation

import (
	"fmt"
	"math"
	"strings"
)

// Strategy names accepted in Config.Strategy.
const (
	StrategyFedAvg      = "fedavg"
	StrategyFedProx     = "fedprox"
	StrategyFedAdam     = "fedadam"
	StrategyFedYogi     = "fedyogi"
	StrategyFedAdagrad  = "fedadagrad"
	StrategyMedian      = "median"
	StrategyTrimmedMean = "trimmed-mean"
)

var strategies = []string{StrategyFedAvg, StrategyFedProx, StrategyFedAdam, StrategyFedYogi, StrategyFedAdagrad, StrategyMedian, StrategyTrimmedMean}

// Defaults applied by WithDefaults to fields left at zero.
//
// β₁ = 0.9 and β₂ = 0.99 are the values Reddi et al. 2021 fix for all their
// experiments. The server learning rate η and the adaptivity τ were tuned per
// task in the paper over grids {1e-3 … 1} and {1e-5 … 1e-1}; η = 1e-2 and
// τ = 1e-3 sit in the middle of those grids and are good first values, not
// universal ones: tune them for a job. μ = 0.01 is from the FedProx paper's
// grid {0.001, 0.01, 0.1, 1} (Li et al. 2020). A trim fraction of 0.1 drops
// the lowest and highest 10 % of sites per coordinate.
const (
	DefaultServerLR     = 1e-2
	DefaultBeta1        = 0.9
	DefaultBeta2        = 0.99
	DefaultTau          = 1e-3
	DefaultProxMu       = 0.01
	DefaultTrimFraction = 0.1
)

// Config selects and tunes the aggregation strategy of a job. It is part of
// the job file; a zero field means "use the default" (see WithDefaults).
type Config struct {
	// Strategy is one of fedavg, fedprox, fedadam, fedyogi, fedadagrad,
	// median, trimmed-mean. Empty means fedavg.
	Strategy string `yaml:"strategy" json:"strategy"`
	// ServerLR is η, the server learning rate of the adaptive optimisers.
	ServerLR float64 `yaml:"server_lr,omitempty" json:"server_lr,omitempty"`
	// Beta1 is β₁, the first-moment decay of the adaptive optimisers.
	Beta1 float64 `yaml:"beta1,omitempty" json:"beta1,omitempty"`
	// Beta2 is β₂, the second-moment decay of FedAdam and FedYogi.
	Beta2 float64 `yaml:"beta2,omitempty" json:"beta2,omitempty"`
	// Tau is τ, the adaptivity: it bounds the step where v is small, and
	// τ² is the initial second moment.
	Tau float64 `yaml:"tau,omitempty" json:"tau,omitempty"`
	// TrimFraction is the share of sites dropped at each end per coordinate
	// by trimmed-mean, in [0, 0.5).
	TrimFraction float64 `yaml:"trim_fraction,omitempty" json:"trim_fraction,omitempty"`
	// ProxMu is μ, the weight of FedProx's proximal term ½μ‖w − w_global‖²,
	// which the site agent adds to its local loss. It does not change
	// server-side aggregation.
	ProxMu float64 `yaml:"prox_mu,omitempty" json:"prox_mu,omitempty"`
}

// WithDefaults returns c with the strategy's zero fields set to the package
// defaults. Fields a strategy does not use are left as they are.
func (c Config) WithDefaults() Config {
	c.Strategy = strings.ToLower(strings.TrimSpace(c.Strategy))
	if c.Strategy == "" {
		c.Strategy = StrategyFedAvg
	}
	switch c.Strategy {
	case StrategyFedAdam, StrategyFedYogi, StrategyFedAdagrad:
		if c.ServerLR == 0 {
			c.ServerLR = DefaultServerLR
		}
		if c.Beta1 == 0 {
			c.Beta1 = DefaultBeta1
		}
		if c.Beta2 == 0 && c.Strategy != StrategyFedAdagrad {
			c.Beta2 = DefaultBeta2
		}
		if c.Tau == 0 {
			c.Tau = DefaultTau
		}
	case StrategyFedProx:
		if c.ProxMu == 0 {
			c.ProxMu = DefaultProxMu
		}
	case StrategyTrimmedMean:
		if c.TrimFraction == 0 {
			c.TrimFraction = DefaultTrimFraction
		}
	}
	return c
}

// Validate reports the first problem with the effective configuration
// (after WithDefaults), phrased for the person who wrote the job file.
func (c Config) Validate() error {
	c = c.WithDefaults()
	known := false
	for _, s := range strategies {
		known = known || s == c.Strategy
	}
	if !known {
		return fmt.Errorf("aggregation strategy %q is unknown: use one of %s", c.Strategy, strings.Join(strategies, ", "))
	}
	fields := []struct {
		name string
		v    float64
	}{{"server_lr", c.ServerLR}, {"beta1", c.Beta1}, {"beta2", c.Beta2}, {"tau", c.Tau}, {"trim_fraction", c.TrimFraction}, {"prox_mu", c.ProxMu}}
	for _, f := range fields {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("aggregation %s is %v: it must be a finite number ≥ 0", f.name, f.v)
		}
	}
	switch c.Strategy {
	case StrategyFedAdam, StrategyFedYogi, StrategyFedAdagrad:
		if c.Beta1 >= 1 {
			return fmt.Errorf("aggregation beta1 is %v: it must be in [0, 1), e.g. 0.9", c.Beta1)
		}
		if c.Beta2 >= 1 {
			return fmt.Errorf("aggregation beta2 is %v: it must be in [0, 1), e.g. 0.99", c.Beta2)
		}
	case StrategyTrimmedMean:
		if c.TrimFraction >= 0.5 {
			return fmt.Errorf("aggregation trim_fraction is %v: it must be below 0.5 so that some sites remain, e.g. 0.1", c.TrimFraction)
		}
	}
	return nil
}

// Robust reports whether the strategy needs every site's update at once
// (median, trimmed-mean). Robust strategies work in plaintext mode only:
// with secure aggregation the coordinator never sees individual updates.
func (c Config) Robust() bool {
	s := c.WithDefaults().Strategy
	return s == StrategyMedian || s == StrategyTrimmedMean
}

// RobustMean combines all updates with the configured robust rule
// (coordinate-wise median or trimmed mean). Sample counts are not used:
// robustness comes from ignoring how much any one site claims.
func (c Config) RobustMean(updates [][]float32) ([]float32, error) {
	c = c.WithDefaults()
	switch c.Strategy {
	case StrategyMedian:
		return Median(updates)
	case StrategyTrimmedMean:
		return TrimmedMean(updates, c.TrimFraction)
	}
	return nil, fmt.Errorf("aggregation strategy %q is not a robust rule: stream updates into a WeightedSum instead", c.Strategy)
}
