"""Model organisms with ground truth, and the benchmarks scored against them."""
