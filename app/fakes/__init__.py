"""Local fakes of outside services, for tests, simulators and benchmarks (no network)."""
