"""User-facing error types shared by the CLI, the producer API and the agents."""

from __future__ import annotations


class MugposError(Exception):
    """Base of errors that carry a message meant for a user, not a traceback."""


class BrokerUnavailable(MugposError):
    """The Kafka broker cannot be reached or refused a request."""


class InputError(MugposError):
    """A user-supplied file or folder cannot be used (missing, unreadable, not an image)."""


class InfrastructureError(MugposError):
    """A dependency (store, broker, database, device, webhook receiver) is down or slow.

    Never the message's fault: whoever meets it holds the batch and retries with backoff, never
    dead-letters it and never acknowledges it. ``service`` is a bounded label for metrics.
    """

    service: str = "unknown"

    def __init__(self, message: str, *, service: str | None = None) -> None:
        super().__init__(message)
        if service is not None:
            self.service = service
