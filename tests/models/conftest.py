"""Fixtures for the model tests: the real YOLO26n weights on CPU, loaded once, with the network cut off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mugpos.models  # noqa: F401  (offline environment before anything imports ultralytics)
from tests.models.netguard import cut_network

WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "weights" / "yolo26n.pt"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    cut_network(monkeypatch)


@pytest.fixture(scope="session")
def weights() -> Path:
    if not WEIGHTS.is_file():
        pytest.fail(f"missing {WEIGHTS}: run `make weights`")
    return WEIGHTS


@pytest.fixture(scope="session")
def detector(weights: Path) -> Any:
    """Loaded once, with the network cut off while loading (only then: other suites use localhost)."""
    from mugpos.models.detector import Detector

    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        return Detector(weights, device="cpu")
