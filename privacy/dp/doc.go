// Package dp owns Concord's differential privacy: clipping, Gaussian noise
// from a random source the caller passes in, Poisson sampling, the Rényi DP
// accountant for the Poisson-subsampled Gaussian mechanism, and a site's
// privacy budget ledger.
package dp
