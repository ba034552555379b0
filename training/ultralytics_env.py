"""What Ultralytics must not do here: download a font, AMP-check weights or data; and its device names.

Imported by training and evaluation alike, so neither imports the other for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mugpos.models  # noqa: F401  (offline environment before ultralytics is imported)
from mugpos.models.checksum import file_sha256

YOLO26N_SHA256 = "9b09cc8bf347f0fc8a5f7657480587f25db09b34bf33b0652110fb03a8ad4fef"


def ensure_font() -> Path:
    """Put a TTF where Ultralytics looks for Arial.ttf, so its dataset check never tries to download one."""
    from ultralytics.utils import USER_CONFIG_DIR

    target = Path(USER_CONFIG_DIR) / "Arial.ttf"
    if target.is_file():
        return target
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not source.is_file():
        raise FileNotFoundError(f"no TTF to stand in for Arial.ttf (looked for {source})")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def ensure_amp_check_weights(base: Path) -> Path | None:
    """Put the base YOLO26n checkpoint where Ultralytics' CUDA AMP check loads it from.

    On CUDA the trainer compares fp32 and fp16 outputs of ``WEIGHTS_DIR/yolo26n.pt`` and downloads that
    file when it is missing; offline, that fails. The base weights are that very file (checked by
    hash against the official release), so a copy avoids the download. Other bases: nothing is done.
    """
    from ultralytics.utils import WEIGHTS_DIR

    target = Path(WEIGHTS_DIR) / "yolo26n.pt"
    if target.is_file() or file_sha256(base) != YOLO26N_SHA256:
        return target if target.is_file() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base, target)
    return target


def ultralytics_device(device: str) -> str:
    """``auto`` -> first CUDA GPU when present, else ``cpu``; ``cuda:N`` -> ``N`` (Ultralytics' spelling)."""
    import torch

    if device == "auto":
        return "0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        return device.partition(":")[2] or "0"
    return device
