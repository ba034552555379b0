"""Metrics every layer may count (the rest live beside the package that owns them)."""

from __future__ import annotations

from prometheus_client import Counter

#: A programming error met while handling a message: logged with its traceback, counted here, and
#: the message dead-lettered as ``internal_error`` (replayable once fixed), never disguised as bad input.
INTERNAL_ERRORS = Counter(
    "mugpos_internal_errors_total", "Programming errors met (logged with their traceback), per stage.", ["stage"]
)
