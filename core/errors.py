"""User-facing error types shared by the CLI, the producer API and the agents."""

from __future__ import annotations


class MugposError(Exception):
    """Base of errors that carry a message meant for a user, not a traceback."""


class BrokerUnavailable(MugposError):
    """The Kafka broker cannot be reached or refused a request."""


class InputError(MugposError):
    """A user-supplied file or folder cannot be used (missing, unreadable, not an image)."""
