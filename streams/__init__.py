"""The Faust runtime: the app and its topic objects (``app``), dead letters, Prometheus metrics,
pipeline statistics, the detection pipeline's wiring from settings, and the Kafka producer and
consumer helpers that the CLI and the benchmarks use.
"""
