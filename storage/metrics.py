"""Prometheus metrics of the storage adapters (``mugpos_*``), beside the runtime's in ``mugpos.streams.metrics``.

Labels are bounded: layers, results and operations come from fixed vocabularies.
"""

from __future__ import annotations

from prometheus_client import Counter

CACHE_REQUESTS = Counter("mugpos_cache_requests_total", "Result-cache look-ups.", ["layer", "result"])
CACHE_ERRORS = Counter("mugpos_cache_errors_total", "Result-cache calls that failed (Redis down).", ["operation"])
SINK_RETRIES = Counter("mugpos_sink_retries_total", "MongoDB writes that failed (the batch is held and retried).")
CAMERA_RECORDS = Counter(
    "mugpos_camera_records_total", "Camera configuration records read from the cameras topic.", ["result"]
)
