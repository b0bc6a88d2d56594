"""One error hierarchy. Errors carry attributes (``retriable``, ``reason``) that callers check,
in the manner of aiokafka's errors, rather than lists of types."""
from __future__ import annotations


class StreamerError(Exception):
    """Base of every error streamer raises on purpose."""

    retriable: bool = False


class InvalidMessage(StreamerError):
    """An input message that fails validation at the edge; it goes to the dead-letter topic.

    ``reason`` is a short stable code (a metrics label and the DLQ ``reason`` field);
    ``detail`` is the human-readable explanation.
    """

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


class BrokerUnavailable(StreamerError):
    """The Kafka broker did not answer in time."""

    retriable = True


class ConfigError(StreamerError):
    """A settings or rule file is invalid; the message says what and where."""
