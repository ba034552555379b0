"""Wiring of the detection pipeline from settings: detector, attributes, store and cache."""

from __future__ import annotations

import logging

from mugpos.core.settings import Settings
from mugpos.models.attributes import load_attribute_tagger
from mugpos.models.batching import BatchProcessor
from mugpos.models.detector import Detector
from mugpos.models.review import ReviewSampler
from mugpos.storage.cache import ResultCache
from mugpos.storage.store import open_store
from mugpos.streams.metrics import MODEL_INFO

log = logging.getLogger(__name__)


def build_processor(settings: Settings, warmup: bool = True) -> BatchProcessor:
    """Load the model (blocking: call from a thread) and connect its store and cache."""
    detector = Detector(
        settings.model,
        device=settings.device,
        image_size=settings.image_size,
        confidence=settings.confidence,
        rect=settings.letterbox == "rect",
        head=settings.head or None,
    )
    if warmup:
        detector.warmup(min(settings.batch_max, 8))
    info = detector.info
    MODEL_INFO.labels(info["model_id"], info["device"]).set(1)
    log.info("detector %s on %s ready", info["model_id"], info["device"])
    store = open_store(settings, guarded=True)
    review = ReviewSampler(store, settings.sample_rate, settings.review_below, settings.review_prefix)
    return BatchProcessor(
        detector,
        load_attribute_tagger(settings.clip_weights, settings.clip_model),
        store,
        ResultCache(settings.redis_url, settings.cache_ttl_s),
        max_pixels=settings.max_image_pixels,
        max_bytes=settings.max_object_bytes,
        batch_max=settings.batch_max,
        review=review,
    )
