"""Sentences the grammar accepts, shown to a user whose sentence it cannot read (and in the docs).

Their own module so that the error type can show them without importing the grammar.
"""

from __future__ import annotations

EXAMPLES: tuple[str, ...] = (
    "alert when a mug is not on a coaster",
    "warn if any mug is within 5 cm of the table edge",
    "notify me when more than 3 mugs are on the table in camera kitchen-1",
    "critical if a mug is closer than 2 cm to another mug",
    "log when the verdict is violation in cameras hall, desk-2 at most once per 10 minutes",
    "warn if the mug count exceeds 4",
    "critical when two mugs are closer than 1.5 cm",
)
