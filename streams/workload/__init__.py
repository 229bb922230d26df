"""APOGÉE workloads for the demo, the tests and the benchmarks, and the SQL oracle."""
