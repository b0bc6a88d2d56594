"""Columnar decoding of input batches: raw Kafka values in, numpy columns and rejections out.

One call decodes a whole ``getmany`` batch of one input topic. Each accepted message becomes one
position in the columns (input order; ``row`` maps it back to its position in the input lists,
hence to its offset); each rejected one a :class:`Rejected` with the same ``reason`` code and
detail as the scalar reference parsers of :mod:`streamer.schemas` (the DLQ contract and the
``streamer_dead_letters_total{reason}`` label).

How it stays exact while being fast:

- **fast path**: each value is decoded by a typed ``msgspec`` decoder whose types are *stricter*
  than the reference: unknown fields forbidden, ``bool`` never a number, integers never given as
  ``1.0``, ``schema_version`` only the integer 1, every range bound of the reference (timestamps,
  plausibility, ``right``) declared on the field; what is left — symbols, ISO dates, the key rule,
  expiry against quote time and ``bid <= ask`` — is checked on the batch with numpy or once per
  distinct value. Values outside the fast path's grammar (also: decoders differ on NaN tokens,
  duplicate keys, integers beyond 64 bits, invalid UTF-8 in fields nobody reads) simply fail it.
- **fallback**: a value the fast path does not accept is handed to the reference parser, which
  accepts it (e.g. ``"bid_size": 5.0`` or ``"schema_version": 1.0``) or gives the exact reason.

So the fast path only ever *accepts*, and only what the reference accepts with the same values
(``tests/unit/test_decode.py`` checks this on hostile corpora); rejections cost what the
reference costs (~4 µs), valid messages ~1 µs (``benchmarks/bench_decode.py``).

Values are decoded one by one (the decoder call costs ~0.4 µs): joining a batch into one JSON
array is not faster and would let two adjacent hostile values merge into one valid element.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from msgspec import UNSET, Meta, Struct, UnsetType

from streamer import schemas
from streamer.errors import InvalidMessage
from streamer.schemas import (MAX_CONTRACTS, MAX_INDEX_LEVEL, MAX_MESSAGE_BYTES, MAX_OPTION_PRICE,
                              MAX_STRIKE, MAX_SYMBOL_LEN, MAX_TS_NS, MIN_INDEX_LEVEL, MIN_STRIKE,
                              MIN_TS_NS)

# -- fast-path grammar: strictly inside what the reference accepts -------------------------------

# gc=False on the structs below: they hold only numbers and strings (no reference cycles), so the
# thousands a batch allocates need not be tracked by the cycle collector (5-10% faster measured on
# 10,000-quote batches; a collection's cost grows with the process's live heap)
_Ts = Annotated[int, Meta(ge=MIN_TS_NS, le=MAX_TS_NS)]
_Symbol = Annotated[str, Meta(min_length=1, max_length=MAX_SYMBOL_LEN)]
_Level = Annotated[float, Meta(ge=MIN_INDEX_LEVEL, le=MAX_INDEX_LEVEL)]
_Strike = Annotated[float, Meta(ge=MIN_STRIKE, le=MAX_STRIKE)]
_Count = Annotated[int, Meta(ge=0, le=MAX_CONTRACTS)]


class _Quote(Struct, forbid_unknown_fields=True, gc=False):
    underlying: _Symbol
    ts_ns: _Ts
    expiry_ts_ns: _Ts
    strike: _Strike
    right: Literal["C", "P"]
    bid: Annotated[float, Meta(ge=0.0, le=MAX_OPTION_PRICE)]
    ask: Annotated[float, Meta(gt=0.0, le=MAX_OPTION_PRICE)]
    bid_size: _Count = 0
    ask_size: _Count = 0
    schema_version: Literal[1] = 1


class _OpenInterest(Struct, forbid_unknown_fields=True, gc=False):
    underlying: _Symbol
    ts_ns: _Ts
    expiry_ts_ns: _Ts
    strike: _Strike
    right: Literal["C", "P"]
    open_interest: _Count
    schema_version: Literal[1] = 1


class _Index(Struct, forbid_unknown_fields=True, gc=False):
    """A tick (``price``) or a daily close (``date`` and ``close``); any other mix falls back."""

    symbol: _Symbol
    underlying: _Symbol
    ts_ns: _Ts
    price: _Level | UnsetType = UNSET
    date: Annotated[str, Meta(min_length=10, max_length=10)] | UnsetType = UNSET
    close: _Level | UnsetType = UNSET
    schema_version: Literal[1] = 1


_QUOTE = msgspec.json.Decoder(_Quote)
_OPEN_INTEREST = msgspec.json.Decoder(_OpenInterest)
_INDEX = msgspec.json.Decoder(_Index)


# -- results ---------------------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class Rejected:
    """A message that failed validation: its position in the input lists, reason code, detail."""

    row: int
    reason: str
    detail: str


def _i8(n: int = 0) -> np.ndarray:
    return np.zeros(n, np.int64)


class _Columns:
    """What every columns class shares: length, row selection, split by underlying."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self.row)

    def take(self, index: np.ndarray) -> Any:
        """The same columns at ``index`` (integer positions or a boolean mask)."""
        return type(self)(**{name: getattr(self, name)[index] for name in self.__slots__})

    def by_underlying(self) -> dict[str, Any]:
        """One columns object per underlying (first-seen order), each in input order."""
        u = self.underlying
        if len(u) == 0:
            return {}
        if (u == u[0]).all():  # the usual batch: a partition's records are mostly one underlying
            return {u[0]: self}
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(u.tolist()):
            groups.setdefault(name, []).append(i)
        return {name: self.take(np.asarray(ix, np.int64)) for name, ix in groups.items()}


@dataclass(slots=True)
class QuoteColumns(_Columns):
    """Accepted option quotes, one position per message, in input order (see ``row``)."""

    row: np.ndarray = field(default_factory=_i8)            # int64, position in the input
    ts_ns: np.ndarray = field(default_factory=_i8)          # int64, UTC ns
    expiry_ts_ns: np.ndarray = field(default_factory=_i8)   # int64, settlement instant, UTC ns
    strike: np.ndarray = field(default_factory=lambda: np.zeros(0))   # f8, index points
    is_call: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    bid: np.ndarray = field(default_factory=lambda: np.zeros(0))      # f8, index points
    ask: np.ndarray = field(default_factory=lambda: np.zeros(0))      # f8, index points
    bid_size: np.ndarray = field(default_factory=_i8)       # int64, contracts
    ask_size: np.ndarray = field(default_factory=_i8)       # int64, contracts
    underlying: np.ndarray = field(default_factory=lambda: np.zeros(0, object))  # str objects


@dataclass(slots=True)
class OpenInterestColumns(_Columns):
    """Accepted open-interest records, in input order (see ``row``)."""

    row: np.ndarray = field(default_factory=_i8)
    ts_ns: np.ndarray = field(default_factory=_i8)
    expiry_ts_ns: np.ndarray = field(default_factory=_i8)
    strike: np.ndarray = field(default_factory=lambda: np.zeros(0))
    is_call: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    open_interest: np.ndarray = field(default_factory=_i8)  # int64, contracts
    underlying: np.ndarray = field(default_factory=lambda: np.zeros(0, object))


TICK, DAILY_CLOSE = 0, 1


@dataclass(slots=True)
class IndexColumns(_Columns):
    """Accepted messages of the index topic, in input order: ticks (``kind`` 0) and official daily
    closes (``kind`` 1; ``price`` is the close, ``date`` the ISO session date, "" for ticks)."""

    row: np.ndarray = field(default_factory=_i8)
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    symbol: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    underlying: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    ts_ns: np.ndarray = field(default_factory=_i8)
    price: np.ndarray = field(default_factory=lambda: np.zeros(0))
    date: np.ndarray = field(default_factory=lambda: np.zeros(0, object))


# -- the shared batch machinery ------------------------------------------------------------------

def _fast_decode(values: Sequence[bytes | None], decoder: msgspec.json.Decoder, max_bytes: int
                 ) -> tuple[list[int], list[Any], list[int]]:
    """Typed-decode each value; returns (rows decoded, their structs, rows for the fallback)."""
    rows: list[int] = []
    objs: list[Any] = []
    slow: list[int] = []
    decode = decoder.decode
    for i, v in enumerate(values):
        if v is None or len(v) > max_bytes:
            slow.append(i)
            continue
        try:
            objs.append(decode(v))
        except (msgspec.DecodeError, TypeError):  # ValidationError is a DecodeError
            slow.append(i)
        else:
            rows.append(i)
    return rows, objs, slow


def _per_distinct(values: list, ok: Callable[[Any], bool]) -> np.ndarray:
    """``ok`` of each value as a bool array, evaluated once per distinct value (batches carry a
    handful of symbols and keys)."""
    verdict = {v: ok(v) for v in set(values)}
    if all(verdict.values()):
        return np.ones(len(values), bool)
    return np.fromiter((verdict[v] for v in values), bool, len(values))


def _key_ok(pair: tuple) -> bool:
    k, u = pair
    return k is not None and k.decode("utf-8", "replace") == u


def _keys_match(keys: Sequence[bytes | None], rows: list[int], underlyings: list[str]) -> np.ndarray:
    """The partitioning contract, per decoded row: the key (UTF-8) is the underlying."""
    if len(rows) != len(keys):
        keys = [keys[i] for i in rows]
    distinct_keys, distinct_und = set(keys), set(underlyings)
    if len(distinct_keys) == 1 and len(distinct_und) == 1:  # the usual batch: one underlying
        return np.full(len(rows), _key_ok((distinct_keys.pop(), distinct_und.pop())))
    return _per_distinct(list(zip(keys, underlyings)), _key_ok)


def _fallback(rows: list[int], values: Sequence[bytes | None], keys: Sequence[bytes | None],
              parse: Callable[..., Any], max_bytes: int, rejected: list[Rejected]) -> list[tuple[int, Any]]:
    """The reference parser (and key rule) on each row: accepted (row, message) pairs; rejections
    are appended to ``rejected``."""
    accepted = []
    for i in rows:
        try:
            msg = parse(values[i], max_bytes=max_bytes)
            schemas.check_key(keys[i], msg.underlying)
        except InvalidMessage as err:
            rejected.append(Rejected(i, err.reason, err.detail))
        else:
            accepted.append((i, msg))
    return accepted


def _merge(fast: dict[str, np.ndarray], slow: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fast and fallback columns together, back in input order."""
    if len(slow["row"]) == 0:
        return fast
    if len(fast["row"]) == 0:
        return slow
    order = np.argsort(np.concatenate([fast["row"], slow["row"]]), kind="stable")
    return {k: np.concatenate([fast[k], slow[k]])[order] for k in fast}


def _check_lengths(values: Sequence, keys: Sequence) -> None:
    if len(values) != len(keys):
        raise ValueError(f"{len(values)} values but {len(keys)} keys")


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), object)
    out[:] = items
    return out


def _sorted(rejected: list[Rejected]) -> list[Rejected]:
    rejected.sort(key=lambda r: r.row)
    return rejected


def _keep(cols: dict[str, np.ndarray], ok: np.ndarray, slow: list[int]) -> dict[str, np.ndarray]:
    """The fast rows that passed every batch check; the others go to the fallback (``slow``)."""
    if ok.all():
        return cols
    slow.extend(cols["row"][~ok].tolist())
    return {k: v[ok] for k, v in cols.items()}


# -- option quotes ---------------------------------------------------------------------------------

def decode_quotes(values: Sequence[bytes | None], keys: Sequence[bytes | None], *,
                  max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[QuoteColumns, list[Rejected]]:
    """Decode and validate a batch of option-quote values (as :func:`schemas.parse_option_quote`
    plus the key rule). ``values[i]`` and ``keys[i]`` are the value and key of record ``i``;
    ``max_bytes``: longer values are rejected as ``too_large`` unparsed.

    >>> q = b'{"underlying":"SPX","ts_ns":1730851200000000000,"expiry_ts_ns":1731704400000000000,' \\
    ...     b'"strike":5900.0,"right":"C","bid":10.1,"ask":10.5}'
    >>> cols, rejected = decode_quotes([q, b"{", q], [b"SPX", b"SPX", b"NDX"])
    >>> cols.row.tolist(), cols.bid.tolist(), [(r.row, r.reason) for r in rejected]
    ([0], [10.1], [(1, 'malformed_json'), (2, 'key_mismatch')])
    """
    _check_lengths(values, keys)
    rows, objs, slow = _fast_decode(values, _QUOTE, max_bytes)
    cols = _contract_columns(rows, objs, _QUOTE_EXTRA)
    und = cols["underlying"].tolist()
    ok = _expiry_ok(cols["ts_ns"], cols["expiry_ts_ns"]) & (cols["bid"] <= cols["ask"])
    ok &= _per_distinct(und, schemas.is_symbol) & _keys_match(keys, rows, und)
    fast = _keep(cols, ok, slow)
    rejected: list[Rejected] = []
    ms = _fallback(sorted(slow), values, keys, schemas.parse_option_quote, max_bytes, rejected)
    slow_cols = _contract_columns([i for i, _ in ms], [q for _, q in ms], _QUOTE_EXTRA)
    return QuoteColumns(**_merge(fast, slow_cols)), _sorted(rejected)


# columns of a contract message beyond ts/expiry/strike/right/underlying, per topic
_QUOTE_EXTRA = (("bid", np.float64), ("ask", np.float64), ("bid_size", np.int64), ("ask_size", np.int64))
_OPEN_INTEREST_EXTRA = (("open_interest", np.int64),)


def _contract_columns(rows: list[int], objs: list, extra: tuple[tuple[str, Any], ...]) -> dict[str, np.ndarray]:
    """Columns of quote or open-interest messages, from the fast path's msgspec structs or the reference
    parser's dataclasses alike (they share the field names)."""
    n = len(objs)
    cols = {"row": np.asarray(rows, np.int64)}
    for name, dtype in (("ts_ns", np.int64), ("expiry_ts_ns", np.int64), ("strike", np.float64)) + extra:
        cols[name] = np.fromiter(map(attrgetter(name), objs), dtype, n)
    cols["is_call"] = np.fromiter([o.right == "C" for o in objs], bool, n)
    cols["underlying"] = _objects([o.underlying for o in objs])
    return cols


def _expiry_ok(ts: np.ndarray, expiry: np.ndarray) -> np.ndarray:
    """Expiry sanity as :func:`schemas._expiry` (no overflow: both are within 2000..2100)."""
    return (expiry >= ts - schemas.EXPIRY_GRACE_NS) & (expiry <= ts + schemas.MAX_EXPIRY_AHEAD_NS)


# -- open interest ---------------------------------------------------------------------------------

def decode_open_interest(values: Sequence[bytes | None], keys: Sequence[bytes | None], *,
                         max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[OpenInterestColumns, list[Rejected]]:
    """Decode and validate a batch of open-interest values (as :func:`schemas.parse_open_interest`
    plus the key rule); see :func:`decode_quotes`."""
    _check_lengths(values, keys)
    rows, objs, slow = _fast_decode(values, _OPEN_INTEREST, max_bytes)
    cols = _contract_columns(rows, objs, _OPEN_INTEREST_EXTRA)
    und = cols["underlying"].tolist()
    ok = _expiry_ok(cols["ts_ns"], cols["expiry_ts_ns"])
    ok &= _per_distinct(und, schemas.is_symbol) & _keys_match(keys, rows, und)
    fast = _keep(cols, ok, slow)
    rejected: list[Rejected] = []
    ms = _fallback(sorted(slow), values, keys, schemas.parse_open_interest, max_bytes, rejected)
    slow_cols = _contract_columns([i for i, _ in ms], [x for _, x in ms], _OPEN_INTEREST_EXTRA)
    return OpenInterestColumns(**_merge(fast, slow_cols)), _sorted(rejected)


# -- index ticks and daily closes ------------------------------------------------------------------

def decode_index(values: Sequence[bytes | None], keys: Sequence[bytes | None], *,
                 max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[IndexColumns, list[Rejected]]:
    """Decode and validate a batch of the index topic, ticks and daily closes (as
    :func:`schemas.parse_index_message` plus the key rule); see :func:`decode_quotes`."""
    _check_lengths(values, keys)
    rows, objs, slow = _fast_decode(values, _INDEX, max_bytes)
    n = len(objs)
    dates = [o.date for o in objs]
    price = [o.price for o in objs]
    close = [o.close for o in objs]
    # a tick has a price and neither date nor close; a close has date and close but no price
    if dates.count(UNSET) == n and close.count(UNSET) == n and UNSET not in price:  # only ticks
        is_close, shape_ok = np.zeros(n, bool), np.ones(n, bool)
        level, day = price, [""] * n
    else:
        flags = [d is not UNSET for d in dates]
        is_close = np.array(flags, bool)
        shape_ok = np.fromiter([(p is UNSET) == f and (c is UNSET) != f for p, c, f in zip(price, close, flags)],
                               bool, n)
        level = [(c if f else p) for p, c, f in zip(price, close, flags)]
        level = [math.nan if x is UNSET else x for x in level]  # rows of a wrong shape: dropped below
        day = [d if f else "" for d, f in zip(dates, flags)]
    syms = [o.symbol for o in objs]
    und = [o.underlying for o in objs]
    cols = dict(row=np.asarray(rows, np.int64), kind=is_close.astype(np.int8), symbol=_objects(syms),
                underlying=_objects(und), ts_ns=np.fromiter([o.ts_ns for o in objs], np.int64, n),
                price=np.fromiter(level, np.float64, n), date=_objects(day))
    ok = shape_ok & _per_distinct(syms, schemas.is_symbol) & _per_distinct(und, schemas.is_symbol)
    ok &= _per_distinct(dates, lambda d: d is UNSET or schemas.is_iso_date(d))
    ok &= _keys_match(keys, rows, und)
    fast = _keep(cols, ok, slow)
    rejected: list[Rejected] = []
    ms = _fallback(sorted(slow), values, keys, schemas.parse_index_message, max_bytes, rejected)
    closes = [type(x) is schemas.DailyClose for _, x in ms]
    slow_cols = dict(row=np.array([i for i, _ in ms], np.int64), kind=np.array(closes, np.int8),
                     symbol=_objects([x.symbol for _, x in ms]),
                     underlying=_objects([x.underlying for _, x in ms]),
                     ts_ns=np.array([x.ts_ns for _, x in ms], np.int64),
                     price=np.array([x.close if c else x.price for (_, x), c in zip(ms, closes)], np.float64),
                     date=_objects([x.date if c else "" for (_, x), c in zip(ms, closes)]))
    return IndexColumns(**_merge(fast, slow_cols)), _sorted(rejected)


# the decoder of each input topic, by the kind of message it is named after (simulator.SimEvent.kind;
# daily closes travel on the index topic: decode_index)
DECODERS: dict[str, Callable[..., tuple[Any, list[Rejected]]]] = {
    "index_tick": decode_index,
    "option_quote": decode_quotes,
    "open_interest": decode_open_interest,
}
