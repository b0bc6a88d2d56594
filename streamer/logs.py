"""Bounded logs: a repeated log line (same logger, same message template) is written at most once per
interval, and the next one that gets through says how many were suppressed.

A broker outage makes aiokafka log every failed connection attempt (hundreds of ERROR lines a second);
a flood of bad input would do the same with dead-letter warnings. Input values never reach a log line
unbounded: error details are excerpts (``schemas.excerpt``).
"""
from __future__ import annotations

import logging
import time


class RateLimit(logging.Filter):
    """At most one record per (logger, template) per ``every_s`` seconds.

    >>> f = RateLimit(every_s=60)
    >>> rec = lambda: logging.LogRecord("aiokafka", logging.ERROR, "", 0, "Unable connect to node %s", (1,), None)
    >>> [f.filter(rec()) for _ in range(3)]
    [True, False, False]
    """

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, suppressed = self.seen.get(key, (-float("inf"), 0))
        if now - last < self.every_s:
            self.seen[key] = (last, suppressed + 1)
            return False
        self.seen[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} similar line(s) suppressed in the last {self.every_s:g}s]"
        return True


def bound_logs(every_s: float = 10.0) -> None:
    """Rate-limit every handler of the root logger (call after logging is configured)."""
    f = RateLimit(every_s)
    for h in logging.getLogger().handlers:
        h.addFilter(f)
