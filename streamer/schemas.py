"""Message types of the topic contract, with units in field names, and validation at the edge.

Each type has a JSON Schema in ``streamer/json_schemas/`` for consumers in other languages;
``tests/unit/test_schemas.py`` checks that both agree. Inputs are validated by hand-written,
allocation-light checks (a JSON-Schema validator would cost ~50 µs a message); any failure raises
:class:`~streamer.errors.InvalidMessage` with a stable ``reason`` code that the worker sends,
with the original bytes, to the dead-letter topic.

Times are UTC nanoseconds since the epoch (``ts_ns``); an option's ``expiry_ts_ns`` is its
settlement instant (09:30 ET for AM-settled SPX monthlies, 16:00 ET for PM-settled SPXW).
Prices are in index points; ``iv`` is an annualized decimal.
"""
from __future__ import annotations

import base64
import hashlib
import math
from datetime import date as _date
from dataclasses import asdict, dataclass
from typing import Any

from streamer.codecs import JSONDecodeError, dumps, loads
from streamer.errors import InvalidMessage

SCHEMA_VERSION = 1

# sanity bounds for timestamps: 2000-01-01 .. 2100-01-01 UTC
MIN_TS_NS = 946_684_800 * 10**9
MAX_TS_NS = 4_102_444_800 * 10**9
# an expiry may lie at most this far in the past of the quote (late settlement prints) or future
EXPIRY_GRACE_NS = 86_400 * 10**9
MAX_EXPIRY_AHEAD_NS = 12 * 366 * 86_400 * 10**9
MAX_SYMBOL_LEN = 32

DIRECTIONS = ("buy", "sell")
SEVERITIES = ("info", "warning", "critical")


@dataclass(slots=True)
class IndexTick:
    """A print of an index level (SPX, VIX, VIX9D, ...); keyed by ``underlying`` (VIX → SPX)."""

    symbol: str
    underlying: str
    ts_ns: int
    price: float
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class DailyClose:
    """The official close of an index for one session (an end-of-day feed; history backfill).

    ``date`` is the New York session date (ISO); ``ts_ns`` the close instant (16:00 ET, 13:00 on
    early-close days). The flow models take official closes; no trigger rule runs on them, so a
    backfill of history never fires triggers.
    """

    symbol: str
    underlying: str
    date: str
    ts_ns: int
    close: float
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class OptionQuote:
    """Top of book of one option contract. ``right`` is "C" or "P"; sizes in contracts."""

    underlying: str
    ts_ns: int
    expiry_ts_ns: int
    strike: float
    right: str
    bid: float
    ask: float
    bid_size: int = 0
    ask_size: int = 0
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class OpenInterest:
    """Open interest of one contract, in contracts (published once a day by OCC)."""

    underlying: str
    ts_ns: int
    expiry_ts_ns: int
    strike: float
    right: str
    open_interest: int
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class AnalyticsSnapshot:
    """Throttled snapshot of every named signal of one underlying (``values``: name → number)."""

    underlying: str
    ts_ns: int
    values: dict[str, float | None]
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class TriggerEvent:
    """A "systematic buy trigger": a rule fired on named inputs crossing thresholds.

    ``event_id`` is deterministic (see :func:`event_id`), so consumers can dedupe redeliveries.
    """

    event_id: str
    rule: str
    underlying: str
    ts_ns: int
    direction: str
    severity: str
    inputs: dict[str, float | None]
    thresholds: dict[str, float | None]
    reason: str
    estimated_notional_usd: float | None = None
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class DeadLetter:
    """An input message that failed validation, with its original bytes (base64) and origin."""

    ts_ns: int
    source_topic: str
    partition: int
    offset: int
    reason: str
    error: str
    payload_b64: str
    key_b64: str | None = None
    schema_version: int = SCHEMA_VERSION


MESSAGE_TYPES: dict[str, type] = {
    "index_tick": IndexTick,
    "daily_close": DailyClose,
    "option_quote": OptionQuote,
    "open_interest": OpenInterest,
    "analytics_snapshot": AnalyticsSnapshot,
    "trigger_event": TriggerEvent,
    "dead_letter": DeadLetter,
}


def to_dict(msg: Any) -> dict[str, Any]:
    """Plain dict of a message dataclass (field order preserved)."""
    return asdict(msg)


def encode(msg: Any) -> bytes:
    """JSON bytes of a message dataclass."""
    return dumps(asdict(msg))


def event_id(rule: str, underlying: str, ts_ns: int, inputs: dict[str, Any]) -> str:
    """Deterministic id of a trigger event: same rule, underlying, event time and inputs ⇒ same id.

    >>> event_id("vol_collapse", "SPX", 1, {"a": 1.0}) == event_id("vol_collapse", "SPX", 1, {"a": 1.0})
    True
    >>> len(event_id("r", "SPX", 1, {}))
    32
    """
    canon = dumps({"rule": rule, "underlying": underlying, "ts_ns": ts_ns,
                   "inputs": {k: inputs[k] for k in sorted(inputs)}})
    return hashlib.sha256(canon).hexdigest()[:32]


def dead_letter(raw: bytes | None, key: bytes | None, topic: str, partition: int, offset: int,
                err: InvalidMessage, ts_ns: int) -> DeadLetter:
    """Wrap a rejected input for the dead-letter topic, keeping its original bytes."""
    return DeadLetter(
        ts_ns=ts_ns, source_topic=topic, partition=partition, offset=offset,
        reason=err.reason, error=err.detail,
        payload_b64=base64.b64encode(raw or b"").decode("ascii"),
        key_b64=base64.b64encode(key).decode("ascii") if key is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# validation at the edge


def _obj(raw: bytes | str | dict) -> dict:
    if isinstance(raw, dict):
        d = raw
    else:
        try:
            d = loads(raw)
        except (JSONDecodeError, TypeError) as exc:
            raise InvalidMessage("malformed_json", f"not valid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise InvalidMessage("not_an_object", f"expected a JSON object, got {type(d).__name__}")
    v = d.get("schema_version", SCHEMA_VERSION)
    if v != SCHEMA_VERSION:
        raise InvalidMessage("unknown_schema_version", f"schema_version {v!r} is not {SCHEMA_VERSION}",
                             "schema_version")
    return d


def _get(d: dict, name: str) -> Any:
    try:
        return d[name]
    except KeyError:
        raise InvalidMessage("missing_field", f"field {name!r} is required", name) from None


def _symbol(d: dict, name: str) -> str:
    s = _get(d, name)
    if not isinstance(s, str) or not s or len(s) > MAX_SYMBOL_LEN or not s.isprintable() or s != s.strip():
        raise InvalidMessage("bad_symbol", f"{name} must be a non-empty symbol, got {s!r}", name)
    return s


def _ts(d: dict, name: str) -> int:
    t = _get(d, name)
    if type(t) is not int:
        raise InvalidMessage("wrong_type", f"{name} must be an integer (ns), got {t!r}", name)
    if not MIN_TS_NS <= t <= MAX_TS_NS:
        raise InvalidMessage("bad_timestamp", f"{name}={t} is outside 2000..2100 in UTC ns", name)
    return t


def _num(d: dict, name: str) -> float:
    x = _get(d, name)
    if type(x) is bool or not isinstance(x, (int, float)):
        raise InvalidMessage("wrong_type", f"{name} must be a number, got {x!r}", name)
    x = float(x)
    if not math.isfinite(x):
        raise InvalidMessage("non_finite", f"{name} must be finite, got {x!r}", name)
    return x


def _positive(d: dict, name: str) -> float:
    x = _num(d, name)
    if x <= 0.0:
        raise InvalidMessage("non_positive_price", f"{name} must be > 0, got {x!r}", name)
    return x


def _count(d: dict, name: str, default: int | None = None) -> int:
    if default is not None and name not in d:
        return default
    n = _get(d, name)
    if type(n) is not int:
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        else:
            raise InvalidMessage("wrong_type", f"{name} must be a whole number, got {n!r}", name)
    if n < 0:
        raise InvalidMessage("negative_count", f"{name} must be >= 0, got {n}", name)
    return n


def _right(d: dict) -> str:
    r = _get(d, "right")
    if r not in ("C", "P"):
        raise InvalidMessage("unknown_right", f"right must be 'C' or 'P', got {r!r}", "right")
    return r


def _expiry(d: dict, ts_ns: int) -> int:
    e = _ts(d, "expiry_ts_ns")
    if e < ts_ns - EXPIRY_GRACE_NS:
        raise InvalidMessage("bad_expiry", f"expiry_ts_ns={e} is more than a day before ts_ns={ts_ns}",
                             "expiry_ts_ns")
    if e > ts_ns + MAX_EXPIRY_AHEAD_NS:
        raise InvalidMessage("bad_expiry", "expiry is more than 12 years after the quote", "expiry_ts_ns")
    return e


def parse_index_tick(raw: bytes | str | dict) -> IndexTick:
    """Validate and decode an index tick.

    >>> parse_index_tick(b'{"symbol":"VIX","underlying":"SPX","ts_ns":1730851200000000000,"price":16.27}').price
    16.27
    >>> parse_index_tick(b'{"symbol":"VIX","underlying":"SPX","ts_ns":1730851200000000000,"price":-1}')
    Traceback (most recent call last):
    ...
    streamer.errors.InvalidMessage: non_positive_price: price must be > 0, got -1.0
    """
    d = _obj(raw)
    return IndexTick(_symbol(d, "symbol"), _symbol(d, "underlying"), _ts(d, "ts_ns"), _positive(d, "price"))


def parse_index_message(raw: bytes | str | dict) -> IndexTick | DailyClose:
    """Decode a message of the index topic: an official close (it has ``date``) or a tick.

    Closes travel on the same topic and partition as the ticks of their underlying, so Kafka keeps
    them in order: a history backfill is processed before the live ticks that follow it.
    """
    d = _obj(raw)
    return parse_daily_close(d) if "date" in d else parse_index_tick(d)


def parse_daily_close(raw: bytes | str | dict) -> DailyClose:
    """Validate and decode an official daily close (ISO date, close instant, positive close)."""
    d = _obj(raw)
    day = _get(d, "date")
    try:
        ok = isinstance(day, str) and len(day) == 10 and _date.fromisoformat(day).isoformat() == day
    except ValueError:
        ok = False
    if not ok:
        raise InvalidMessage("bad_date", f"date must be an ISO date YYYY-MM-DD, got {day!r}", "date")
    return DailyClose(_symbol(d, "symbol"), _symbol(d, "underlying"), day, _ts(d, "ts_ns"), _positive(d, "close"))


def parse_option_quote(raw: bytes | str | dict) -> OptionQuote:
    """Validate and decode an option quote (bid ≥ 0, ask > 0, bid ≤ ask, known right, sane expiry)."""
    d = _obj(raw)
    ts = _ts(d, "ts_ns")
    bid = _num(d, "bid")
    ask = _num(d, "ask")
    if bid < 0.0:
        raise InvalidMessage("negative_price", f"bid must be >= 0, got {bid!r}", "bid")
    if ask <= 0.0:
        raise InvalidMessage("non_positive_price", f"ask must be > 0, got {ask!r}", "ask")
    if bid > ask:
        raise InvalidMessage("crossed_quote", f"bid {bid!r} > ask {ask!r}", "bid")
    return OptionQuote(
        underlying=_symbol(d, "underlying"), ts_ns=ts, expiry_ts_ns=_expiry(d, ts),
        strike=_positive(d, "strike"), right=_right(d), bid=bid, ask=ask,
        bid_size=_count(d, "bid_size", 0), ask_size=_count(d, "ask_size", 0),
    )


def parse_open_interest(raw: bytes | str | dict) -> OpenInterest:
    """Validate and decode an open-interest record."""
    d = _obj(raw)
    ts = _ts(d, "ts_ns")
    return OpenInterest(
        underlying=_symbol(d, "underlying"), ts_ns=ts, expiry_ts_ns=_expiry(d, ts),
        strike=_positive(d, "strike"), right=_right(d), open_interest=_count(d, "open_interest"),
    )


def parse_trigger_event(raw: bytes | str | dict) -> TriggerEvent:
    """Decode a trigger event (for consumers: the demo, tests, execution adapters)."""
    d = _obj(raw)
    direction = _get(d, "direction")
    severity = _get(d, "severity")
    if direction not in DIRECTIONS:
        raise InvalidMessage("bad_enum", f"direction must be one of {DIRECTIONS}", "direction")
    if severity not in SEVERITIES:
        raise InvalidMessage("bad_enum", f"severity must be one of {SEVERITIES}", "severity")
    return TriggerEvent(
        event_id=str(_get(d, "event_id")), rule=str(_get(d, "rule")), underlying=_symbol(d, "underlying"),
        ts_ns=_ts(d, "ts_ns"), direction=direction, severity=severity,
        inputs=dict(_get(d, "inputs")), thresholds=dict(_get(d, "thresholds")), reason=str(_get(d, "reason")),
        estimated_notional_usd=d.get("estimated_notional_usd"),
    )


PARSERS = {
    "index_tick": parse_index_tick,
    "daily_close": parse_daily_close,
    "option_quote": parse_option_quote,
    "open_interest": parse_open_interest,
    "trigger_event": parse_trigger_event,
}
