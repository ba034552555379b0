"""Prometheus metrics of the project (``mugpos_*``): one registry-wide definition each.

Labels are bounded: stage and reason codes come from fixed vocabularies, never from user data.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

IMAGES_PROCESSED = Counter("mugpos_images_processed_total", "Images that produced a detection event.", ["cached"])
DEAD_LETTERS = Counter("mugpos_dead_letters_total", "Messages sent to the dead-letter topic.", ["stage", "reason"])
STAGE_SECONDS = Histogram(
    "mugpos_stage_duration_seconds",
    "Time spent per stage and batch.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "mugpos_batch_size_images", "Images per inference batch.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
END_TO_END_SECONDS = Histogram(
    "mugpos_end_to_end_latency_seconds",
    "From captured_at to the detection event.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
MODEL_INFO = Gauge("mugpos_model_info", "The loaded detector (value 1).", ["model_id", "device"])
SINK_WRITES = Counter("mugpos_sink_documents_total", "Documents upserted into MongoDB.", ["kind"])
DESIRED_WORKERS = Gauge("mugpos_desired_gpu_workers", "Detect workers the control agent wants running.")
RUNNING_WORKERS = Gauge("mugpos_gpu_workers", "Detect workers the scaler reports running.")
CONSUMER_LAG = Gauge(
    "mugpos_consumer_lag_messages", "Messages waiting per partition of a topic.", ["topic", "partition"]
)
ANNOTATED_WRITES = Counter("mugpos_annotated_images_total", "Annotated images written to the store.", ["result"])
HELD_BATCHES = Gauge("mugpos_held_batches", "Batches held back by infrastructure trouble, per stage.", ["stage"])
HOLD_RETRIES = Counter(
    "mugpos_hold_retries_total", "Retries of a held batch, per stage and failing service.", ["stage", "service"]
)
