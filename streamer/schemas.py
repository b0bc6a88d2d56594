"""Message types of the topic contract, with units in field names, and validation at the edge.

Each type has a JSON Schema in ``streamer/json_schemas/`` for consumers in other languages;
``tests/unit/test_schemas.py`` checks that both agree. Inputs are validated by hand-written,
allocation-light checks (a JSON-Schema validator would cost ~50 µs a message); any failure raises
:class:`~streamer.errors.InvalidMessage` with a stable ``reason`` code that the worker sends,
with the original bytes, to the dead-letter topic.

Times are UTC nanoseconds since the epoch (``ts_ns``); an option's ``expiry_ts_ns`` is its
settlement instant (09:30 ET for AM-settled SPX monthlies, 16:00 ET for PM-settled SPXW).
Prices are in index points; ``iv`` is an annualized decimal.

Plausibility at the edge: besides types, every number must lie in a range that any real market
respects (see the ``MIN_*``/``MAX_*`` constants below; the JSON Schemas carry the same bounds); a
value outside it is rejected with reason ``out_of_range`` (timestamps: ``bad_timestamp``). A message
longer than ``max_bytes`` (default :data:`MAX_MESSAGE_BYTES`) is rejected as ``too_large`` without
being parsed. Error details quote at most a short excerpt of the input (:func:`excerpt`), so a
hostile message cannot inflate the dead-letter record or the logs.

:mod:`streamer.decode` decodes whole batches into numpy columns; these scalar parsers are its
reference (same accepted values, same reason codes).
"""
from __future__ import annotations

import base64
import hashlib
import math
import reprlib
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

# Plausibility ranges (reason ``out_of_range``), wide enough for any real market:
# index levels: VIX has never closed below 9 nor above 90, SPX is 4-digit, NDX 5-digit, the
# highest-priced equity indices (e.g. BSE Sensex, Nikkei) are 5-6 digits: 1e-4 .. 1e7 points
MIN_INDEX_LEVEL = 1e-4
MAX_INDEX_LEVEL = 1e7
# strikes live on the same scale as their index (penny strikes of low-priced underlyings included)
MIN_STRIKE = 1e-4
MAX_STRIKE = 1e7
# an option premium never exceeds its strike or its underlying (calls), so < 1e6 points
MAX_OPTION_PRICE = 1e6
# contracts at the bid/ask, and open interest of one contract: the largest SPX open interest of a
# single contract is ~10^6 contracts, all listed US options together ~10^9: 1e8 per contract
MAX_CONTRACTS = 100_000_000
# an input message (a few hundred bytes in practice) longer than this is rejected unparsed
MAX_MESSAGE_BYTES = 64 * 1024
# a dead-letter record is kept below this when encoded (Kafka's default max.message.bytes is
# 1 MiB; the rest is headroom for the key, headers and the record batch framing)
DEAD_LETTER_MAX_BYTES = 900_000
# the dead-letter ``error`` text, and how many bytes of a key it keeps
MAX_ERROR_CHARS = 500
MAX_DEAD_LETTER_KEY_BYTES = 1024

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
    input_seq: int = 0  # inputs of the underlying applied so far: a consumer can tell that nothing was skipped


@dataclass(slots=True)
class TriggerEvent:
    """A "systematic buy trigger": a rule fired on named inputs crossing thresholds.

    ``event_id`` is deterministic (see :func:`event_id`: rule, underlying, ``ts_ns`` and ``input_seq``),
    so consumers can dedupe redeliveries and replays.
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
    input_seq: int = 0
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class DeadLetter:
    """An input message that failed validation, with its original bytes (base64) and origin.

    ``payload_b64`` holds the original value bytes, cut to the first bytes that fit when the
    record would otherwise exceed its size bound (``payload_truncated``); ``payload_len`` and
    ``payload_sha256`` always describe the whole original value (``payload_len`` is 0 and the
    hash that of ``b""`` for a null value). ``key_b64`` keeps at most
    :data:`MAX_DEAD_LETTER_KEY_BYTES` of the key (``key_truncated``).
    """

    ts_ns: int
    source_topic: str
    partition: int
    offset: int
    reason: str
    error: str
    payload_b64: str
    key_b64: str | None = None
    payload_len: int = 0
    payload_sha256: str = hashlib.sha256(b"").hexdigest()
    payload_truncated: bool = False
    key_truncated: bool = False
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
    """JSON bytes of a message dataclass: orjson serializes the (slots) dataclass itself, fields in
    declaration order — the same bytes as ``dumps(asdict(msg))`` (a test holds it), without asdict's
    recursive deep copy (~250 µs for a snapshot of every signal vs ~8 µs; one per segment live)."""
    return dumps(msg)


def event_id(rule: str, underlying: str, ts_ns: int, input_seq: int) -> str:
    """Deterministic id of a trigger event: the rule, the underlying, the event time and the input
    position that fired it (``input_seq``: how many inputs of the underlying the engine had applied).
    No float enters it, so a replay that sums in another order still gives the same id.

    >>> event_id("vol_collapse", "SPX", 1, 7) == event_id("vol_collapse", "SPX", 1, 7)
    True
    >>> event_id("vol_collapse", "SPX", 1, 7) == event_id("vol_collapse", "SPX", 1, 8)
    False
    >>> len(event_id("r", "SPX", 1, 0))
    32
    """
    canon = f"{rule}\x1f{underlying}\x1f{int(ts_ns)}\x1f{int(input_seq)}".encode()
    return hashlib.sha256(canon).hexdigest()[:32]


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dead_letter(raw: bytes | None, key: bytes | None, topic: str, partition: int, offset: int,
                err: InvalidMessage, ts_ns: int, *, max_bytes: int = DEAD_LETTER_MAX_BYTES) -> DeadLetter:
    """Wrap a rejected input for the dead-letter topic, keeping its original bytes when they fit.

    ``encode(dead_letter(...))`` is always shorter than ``max_bytes`` bytes (default
    :data:`DEAD_LETTER_MAX_BYTES`), whatever the sizes of ``raw``, ``key`` and ``err``: the error
    text is cut to :data:`MAX_ERROR_CHARS` characters, the key to :data:`MAX_DEAD_LETTER_KEY_BYTES`
    bytes, and the payload to the longest prefix that fits (its full length and SHA-256 are kept).
    Raises ValueError if ``max_bytes`` is too small for a record with an empty payload. ``err`` is
    an :class:`InvalidMessage` or anything with its ``reason`` and ``detail`` (a
    :class:`streamer.decode.Rejected`).

    >>> dl = dead_letter(b"x" * 2_000_000, b"SPX", "t", 0, 7, InvalidMessage("too_large", "big"), 1)
    >>> dl.payload_truncated, dl.payload_len, len(encode(dl)) < DEAD_LETTER_MAX_BYTES
    (True, 2000000, True)
    """
    payload = bytes(raw or b"")
    key_kept = None if key is None else bytes(key[:MAX_DEAD_LETTER_KEY_BYTES])
    dl = DeadLetter(
        ts_ns=ts_ns, source_topic=_bounded(topic, 249), partition=partition, offset=offset,
        reason=_bounded(err.reason, 64), error=_bounded(err.detail, MAX_ERROR_CHARS),
        payload_b64="",
        key_b64=None if key_kept is None else base64.b64encode(key_kept).decode("ascii"),
        payload_len=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_truncated=False, key_truncated=key is not None and len(key) > len(key_kept),
    )
    # the record without its payload; base64 text needs no JSON escaping, so every 3 payload
    # bytes kept add exactly 4 bytes ("false" -> "true" only shortens it)
    room = max_bytes - 1 - len(encode(dl))
    if room < 0:
        raise ValueError(f"max_bytes={max_bytes} is too small for a dead-letter record")
    keep = room // 4 * 3
    if len(payload) > keep:
        payload, dl.payload_truncated = payload[:keep], True
    dl.payload_b64 = base64.b64encode(payload).decode("ascii")
    return dl


# ---------------------------------------------------------------------------------------------
# validation at the edge

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def excerpt(x: Any) -> str:
    """A ``repr`` of ``x`` of at most ~100 characters, whatever its size (for error details).

    >>> excerpt("a" * 400_000)
    "'aaaaaaaaaaaaaaaaaaaaaaaaaa...aaaaaaaaaaaaaaaaaaaaaaaaaaaa'"
    >>> excerpt(12.5)
    '12.5'
    """
    r = _REPR.repr(x)  # bounds each part (string, number, items); the total is cut here
    return r if len(r) <= 100 else r[:99] + "…"


def _obj(raw: bytes | str | dict, max_bytes: int = MAX_MESSAGE_BYTES) -> dict:
    if isinstance(raw, dict):
        d = raw
    else:
        if raw is not None and len(raw) > max_bytes:
            raise InvalidMessage("too_large", f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
        try:
            d = loads(raw)
        except (JSONDecodeError, TypeError) as exc:
            raise InvalidMessage("malformed_json", f"not valid JSON: {_bounded(str(exc), 200)}") from None
    if not isinstance(d, dict):
        raise InvalidMessage("not_an_object", f"expected a JSON object, got {type(d).__name__}")
    v = d.get("schema_version", SCHEMA_VERSION)
    if v != SCHEMA_VERSION:
        raise InvalidMessage("unknown_schema_version", f"schema_version {excerpt(v)} is not {SCHEMA_VERSION}",
                             "schema_version")
    return d


def _get(d: dict, name: str) -> Any:
    try:
        return d[name]
    except KeyError:
        raise InvalidMessage("missing_field", f"field {name!r} is required", name) from None


def _symbol(d: dict, name: str) -> str:
    s = _get(d, name)
    if not is_symbol(s):
        raise InvalidMessage("bad_symbol", f"{name} must be a non-empty symbol, got {excerpt(s)}", name)
    return s


def is_symbol(s: Any) -> bool:
    """A symbol: a non-empty printable string of at most 32 characters without surrounding blanks."""
    return isinstance(s, str) and 0 < len(s) <= MAX_SYMBOL_LEN and s.isprintable() and s == s.strip()


def _ts(d: dict, name: str) -> int:
    t = _get(d, name)
    if type(t) is bool or not isinstance(t, (int, float)):
        raise InvalidMessage("wrong_type", f"{name} must be an integer (ns), got {excerpt(t)}", name)
    # range first: JSON integers beyond 64 bits arrive as floats (orjson), and a year-9999
    # timestamp is out of range whatever its notation
    if not MIN_TS_NS <= t <= MAX_TS_NS:
        raise InvalidMessage("bad_timestamp", f"{name}={excerpt(t)} is outside 2000..2100 in UTC ns", name)
    if type(t) is not int:
        raise InvalidMessage("wrong_type", f"{name} must be an integer (ns), got {excerpt(t)}", name)
    return t


def _num(d: dict, name: str) -> float:
    x = _get(d, name)
    if type(x) is bool or not isinstance(x, (int, float)):
        raise InvalidMessage("wrong_type", f"{name} must be a number, got {excerpt(x)}", name)
    x = float(x)
    if not math.isfinite(x):
        raise InvalidMessage("non_finite", f"{name} must be finite, got {x!r}", name)
    return x


def _positive(d: dict, name: str) -> float:
    x = _num(d, name)
    if x <= 0.0:
        raise InvalidMessage("non_positive_price", f"{name} must be > 0, got {x!r}", name)
    return x


def _within(name: str, x: float, lo: float, hi: float) -> None:
    if not lo <= x <= hi:
        raise InvalidMessage("out_of_range", f"{name}={x!r} is outside the plausible range {lo:g}..{hi:g}", name)


def _level(d: dict, name: str) -> float:
    x = _positive(d, name)
    _within(name, x, MIN_INDEX_LEVEL, MAX_INDEX_LEVEL)
    return x


def _strike(d: dict) -> float:
    x = _positive(d, "strike")
    _within("strike", x, MIN_STRIKE, MAX_STRIKE)
    return x


def _count(d: dict, name: str, default: int | None = None) -> int:
    if default is not None and name not in d:
        return default
    n = _get(d, name)
    if type(n) is not int:
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        else:
            raise InvalidMessage("wrong_type", f"{name} must be a whole number, got {excerpt(n)}", name)
    if n < 0:
        raise InvalidMessage("negative_count", f"{name} must be >= 0, got {excerpt(n)}", name)
    if n > MAX_CONTRACTS:
        raise InvalidMessage("out_of_range", f"{name}={excerpt(n)} is above the plausible {MAX_CONTRACTS:g} "
                             "contracts", name)
    return n


def _right(d: dict) -> str:
    r = _get(d, "right")
    if r not in ("C", "P"):
        raise InvalidMessage("unknown_right", f"right must be 'C' or 'P', got {excerpt(r)}", "right")
    return r


def _expiry(d: dict, ts_ns: int) -> int:
    e = _ts(d, "expiry_ts_ns")
    if e < ts_ns - EXPIRY_GRACE_NS:
        raise InvalidMessage("bad_expiry", f"expiry_ts_ns={e} is more than a day before ts_ns={ts_ns}",
                             "expiry_ts_ns")
    if e > ts_ns + MAX_EXPIRY_AHEAD_NS:
        raise InvalidMessage("bad_expiry", "expiry is more than 12 years after the quote", "expiry_ts_ns")
    return e


def check_key(key: bytes | None, underlying: str) -> None:
    """The partitioning contract: a message's Kafka key (UTF-8) is its underlying.

    Checked after the message itself is valid; raises ``key_mismatch`` otherwise.

    >>> check_key(b"SPX", "SPX")
    >>> check_key(b"NDX", "SPX")
    Traceback (most recent call last):
    ...
    streamer.errors.InvalidMessage: key_mismatch: message key 'NDX' is not its underlying 'SPX'
    """
    k = key.decode("utf-8", "replace") if key is not None else None
    if k != underlying:
        raise InvalidMessage("key_mismatch", f"message key {excerpt(k)} is not its underlying "
                             f"{excerpt(underlying)}", "underlying")


def parse_index_tick(raw: bytes | str | dict, *, max_bytes: int = MAX_MESSAGE_BYTES) -> IndexTick:
    """Validate and decode an index tick (price within :data:`MIN_INDEX_LEVEL`..:data:`MAX_INDEX_LEVEL`).

    >>> parse_index_tick(b'{"symbol":"VIX","underlying":"SPX","ts_ns":1730851200000000000,"price":16.27}').price
    16.27
    >>> parse_index_tick(b'{"symbol":"VIX","underlying":"SPX","ts_ns":1730851200000000000,"price":-1}')
    Traceback (most recent call last):
    ...
    streamer.errors.InvalidMessage: non_positive_price: price must be > 0, got -1.0
    """
    d = _obj(raw, max_bytes)
    return IndexTick(_symbol(d, "symbol"), _symbol(d, "underlying"), _ts(d, "ts_ns"), _level(d, "price"))


def parse_index_message(raw: bytes | str | dict, *, max_bytes: int = MAX_MESSAGE_BYTES) -> IndexTick | DailyClose:
    """Decode a message of the index topic: an official close (it has ``date``) or a tick.

    Closes travel on the same topic and partition as the ticks of their underlying, so Kafka keeps
    them in order: a history backfill is processed before the live ticks that follow it.
    """
    d = _obj(raw, max_bytes)
    return parse_daily_close(d) if "date" in d else parse_index_tick(d)


def is_iso_date(day: Any) -> bool:
    """``day`` is an ISO date string YYYY-MM-DD."""
    try:
        return isinstance(day, str) and len(day) == 10 and _date.fromisoformat(day).isoformat() == day
    except ValueError:
        return False


def parse_daily_close(raw: bytes | str | dict, *, max_bytes: int = MAX_MESSAGE_BYTES) -> DailyClose:
    """Validate and decode an official daily close (ISO date, close instant, plausible close)."""
    d = _obj(raw, max_bytes)
    day = _get(d, "date")
    if not is_iso_date(day):
        raise InvalidMessage("bad_date", f"date must be an ISO date YYYY-MM-DD, got {excerpt(day)}", "date")
    return DailyClose(_symbol(d, "symbol"), _symbol(d, "underlying"), day, _ts(d, "ts_ns"), _level(d, "close"))


def parse_option_quote(raw: bytes | str | dict, *, max_bytes: int = MAX_MESSAGE_BYTES) -> OptionQuote:
    """Validate and decode an option quote (0 ≤ bid ≤ ask, 0 < ask, both below
    :data:`MAX_OPTION_PRICE`; known right, plausible strike and sizes, sane expiry)."""
    d = _obj(raw, max_bytes)
    ts = _ts(d, "ts_ns")
    bid = _num(d, "bid")
    ask = _num(d, "ask")
    if bid < 0.0:
        raise InvalidMessage("negative_price", f"bid must be >= 0, got {bid!r}", "bid")
    if ask <= 0.0:
        raise InvalidMessage("non_positive_price", f"ask must be > 0, got {ask!r}", "ask")
    _within("bid", bid, 0.0, MAX_OPTION_PRICE)
    _within("ask", ask, 0.0, MAX_OPTION_PRICE)
    if bid > ask:
        raise InvalidMessage("crossed_quote", f"bid {bid!r} > ask {ask!r}", "bid")
    return OptionQuote(
        underlying=_symbol(d, "underlying"), ts_ns=ts, expiry_ts_ns=_expiry(d, ts),
        strike=_strike(d), right=_right(d), bid=bid, ask=ask,
        bid_size=_count(d, "bid_size", 0), ask_size=_count(d, "ask_size", 0),
    )


def parse_open_interest(raw: bytes | str | dict, *, max_bytes: int = MAX_MESSAGE_BYTES) -> OpenInterest:
    """Validate and decode an open-interest record (at most :data:`MAX_CONTRACTS`)."""
    d = _obj(raw, max_bytes)
    ts = _ts(d, "ts_ns")
    return OpenInterest(
        underlying=_symbol(d, "underlying"), ts_ns=ts, expiry_ts_ns=_expiry(d, ts),
        strike=_strike(d), right=_right(d), open_interest=_count(d, "open_interest"),
    )


def parse_trigger_event(raw: bytes | str | dict, *, max_bytes: int = MAX_MESSAGE_BYTES) -> TriggerEvent:
    """Decode a trigger event (for consumers: the demo, tests, execution adapters)."""
    d = _obj(raw, max_bytes)
    direction = _get(d, "direction")
    severity = _get(d, "severity")
    if direction not in DIRECTIONS:
        raise InvalidMessage("bad_enum", f"direction must be one of {DIRECTIONS}", "direction")
    if severity not in SEVERITIES:
        raise InvalidMessage("bad_enum", f"severity must be one of {SEVERITIES}", "severity")
    seq = d.get("input_seq", 0)
    if type(seq) is not int or seq < 0:
        raise InvalidMessage("wrong_type", f"input_seq must be an integer >= 0, got {excerpt(seq)}", "input_seq")
    return TriggerEvent(
        event_id=str(_get(d, "event_id")), rule=str(_get(d, "rule")), underlying=_symbol(d, "underlying"),
        ts_ns=_ts(d, "ts_ns"), direction=direction, severity=severity,
        inputs=dict(_get(d, "inputs")), thresholds=dict(_get(d, "thresholds")), reason=str(_get(d, "reason")),
        estimated_notional_usd=d.get("estimated_notional_usd"), input_seq=seq,
    )


PARSERS = {
    "index_tick": parse_index_tick,
    "daily_close": parse_daily_close,
    "option_quote": parse_option_quote,
    "open_interest": parse_open_interest,
    "trigger_event": parse_trigger_event,
}
