"""aep_io's benchmarks (see README.md): each case runs in a fresh process against baselines."""
