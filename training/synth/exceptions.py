"""Errors of the renderer and its data sets."""

from __future__ import annotations


class DatasetError(ValueError):
    """A rendered data set failed its label checks, or the renderer was given unusable input."""
