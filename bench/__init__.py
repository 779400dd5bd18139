"""Benchmarks that print figures (run with ./run bench NAME)."""
