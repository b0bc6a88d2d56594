"""Trigger-rule primitives: a threshold crossing with hysteresis and cooldown.

A rule's state is plain data (``to_state``/``from_state``) so the worker can keep it in a changelogged
table and a backtest can run the very same object over history.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPS = {"<=": lambda x, t: x <= t, ">=": lambda x, t: x >= t, "<": lambda x, t: x < t, ">": lambda x, t: x > t}


@dataclass(slots=True)
class ThresholdRule:
    """Fires once when ``value op threshold``; re-arms only after the value clears ``rearm``.

    ``rearm`` is on the far side of ``threshold`` (hysteresis): for ``op="<="``, threshold −0.15 and
    rearm −0.10, a value must come back above −0.10 before the rule can fire again. ``cooldown_ns``
    is a minimum event-time gap between two firings. ``reset()`` re-arms (e.g. at a new session).

    >>> r = ThresholdRule("vol_collapse", "<=", -0.15, rearm=-0.10)
    >>> [r.check(x, ts) for ts, x in enumerate([-0.05, -0.16, -0.20, -0.12, -0.08, -0.17])]
    [False, True, False, False, False, True]
    """

    name: str
    op: str
    threshold: float
    rearm: float | None = None
    cooldown_ns: int = 0
    armed: bool = True
    last_fired_ns: int | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"rule {self.name}: op must be one of {sorted(OPS)}, got {self.op!r}")
        if self.rearm is None:
            self.rearm = self.threshold
        elif OPS[self.op](self.rearm, self.threshold) and self.rearm != self.threshold:
            raise ValueError(f"rule {self.name}: rearm {self.rearm} must lie on the clear side of "
                             f"threshold {self.threshold} for op {self.op}")

    def check(self, value: float, ts_ns: int) -> bool:
        """Evaluate one observation; True exactly when the rule fires. NaN never fires."""
        if value != value:
            return False
        hit = OPS[self.op](value, self.threshold)
        if not self.armed:
            # cleared when the value is back on the other side of the re-arm level
            if not OPS[self.op](value, self.rearm) and value != self.rearm:
                self.armed = True
            return False
        if not hit:
            return False
        if self.last_fired_ns is not None and ts_ns - self.last_fired_ns < self.cooldown_ns:
            return False
        self.armed = False
        self.last_fired_ns = ts_ns
        return True

    def reset(self) -> None:
        """Re-arm regardless of the current value (a new session, a new reference close)."""
        self.armed = True

    def to_state(self) -> dict[str, Any]:
        return {"armed": self.armed, "last_fired_ns": self.last_fired_ns}

    def load_state(self, d: dict[str, Any]) -> None:
        self.armed = bool(d["armed"])
        self.last_fired_ns = d["last_fired_ns"]
