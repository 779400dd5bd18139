"""Developer helpers: the dev stack used by the demo, the tests and the benchmarks."""
