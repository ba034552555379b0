"""Serving-side vision: image decoding, letterboxing, detection (two heads on one trunk), attribute
tagging, positioning, annotation and frames for review.

This package knows nothing about Kafka or Faust, and never imports ``mugpos.training``.

Importing it pins the ML libraries to offline behaviour *before* any of them is
imported: Ultralytics otherwise probes DNS at import, writes settings under the
home directory and may try to pip-install or download assets, and Hugging Face
Hub retries for tens of seconds when there is no network. Every value is a
``setdefault``, so an operator can still override it from the environment.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _default_config_dir() -> str:
    """Return a writable folder for Ultralytics settings: the user cache, else the temp dir."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    candidate = cache / "mugpos" / "ultralytics"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return str(candidate)
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"mugpos-ultralytics-{os.getuid()}"
    fallback.mkdir(parents=True, exist_ok=True)
    return str(fallback)


os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "0")
if "YOLO_CONFIG_DIR" not in os.environ:
    os.environ["YOLO_CONFIG_DIR"] = _default_config_dir()
# Load .pt checkpoints with torch's weights_only unpickler and Ultralytics' class allow-list.
os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
