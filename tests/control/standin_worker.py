"""A stand-in for `mugpos worker --role detect` in scaler tests: starts at once, loads no model.

argv: MARKER_DIR SLOT [--ignore-term]. Writes MARKER_DIR/started-SLOT (pid and web port) at start
and MARKER_DIR/term-SLOT when SIGTERM arrives, then exits 0 (a graceful stop); with --ignore-term
it ignores SIGTERM, so only SIGKILL stops it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def main() -> None:
    marker_dir, slot = Path(sys.argv[1]), sys.argv[2]
    ignore = "--ignore-term" in sys.argv[3:]

    def on_term(signum: int, frame: FrameType | None) -> None:
        (marker_dir / f"term-{slot}").write_text(str(os.getpid()))
        if not ignore:
            sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    info = {"pid": os.getpid(), "port": os.environ.get("MUGPOS_WEB_PORT"), "role": os.environ.get("STANDIN_ROLE")}
    (marker_dir / f"started-{slot}").write_text(json.dumps(info))
    while True:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
