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

Values are decoded one by one (one decoder call each, ~0.45 µs a quote, driven by
``list.extend(map(...))``: no Python loop per value), a block of :data:`_BLOCK` at a time. Joining
a block into one JSON array decoded in one call was measured slower: it needs an exact check that
no value merges with its neighbour (``{"a":"},{"}``) or holds two elements, and that check plus
the joined buffer cost more than the calls saved.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


# dtype objects: a view to a dtype instance costs less per call than to a type
_F8, _BOOL, _U8 = np.dtype(np.float64), np.dtype(np.bool_), np.dtype(np.uint64)


# -- the shared batch machinery ------------------------------------------------------------------

# A batch is decoded a block at a time: the block's structs, and the columns built from them, stay
# in cache (a 20,000-quote batch in one piece costs ~1.5x more per message than in blocks).
_BLOCK = 1024


def _fast_decode(values: Sequence[bytes | None], a: int, b: int, decoder: msgspec.json.Decoder,
                 max_bytes: int, slow: list[int]) -> tuple[np.ndarray, list[Any]]:
    """Typed-decode each of ``values[a:b]``: (rows decoded, their structs); the other rows are
    appended to ``slow`` (for the fallback)."""
    block = values if a == 0 and b == len(values) else values[a:b]
    try:
        fits = not block or max(map(len, block)) <= max_bytes
    except TypeError:  # a None (decoding it raises TypeError: it goes to the fallback)
        fits = all(v is None or len(v) <= max_bytes for v in block)
    objs: list[Any] = []
    bad: list[int] = []
    if fits:
        # no Python loop per value: extend() keeps what map() decoded before a failure, and the
        # iterator resumes after the failing value
        rest = map(decoder.decode, block)
        while True:
            try:
                objs.extend(rest)
                break
            except (msgspec.DecodeError, TypeError):  # ValidationError is a DecodeError
                bad.append(len(objs) + len(bad))
    if len(objs) + len(bad) != len(block):  # too long values (or no such extend): one by one
        objs, bad = _one_by_one(block, decoder, max_bytes)
    if not bad:
        return np.arange(a, b, dtype=np.int64), objs
    slow.extend(a + i for i in bad)
    return np.delete(np.arange(a, b, dtype=np.int64), bad), objs


def _one_by_one(values: list, decoder: msgspec.json.Decoder, max_bytes: int) -> tuple[list[Any], list[int]]:
    objs: list[Any] = []
    bad: list[int] = []
    decode = decoder.decode
    for i, v in enumerate(values):
        if v is None or len(v) > max_bytes:
            bad.append(i)
            continue
        try:
            objs.append(decode(v))
        except (msgspec.DecodeError, TypeError):
            bad.append(i)
    return objs, bad


def _fast_columns(values: Sequence[bytes | None], keys: Sequence[bytes | None], decoder: msgspec.json.Decoder,
                  max_bytes: int, build: Callable[..., dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], list[int]]:
    """The fast path over a batch: the columns ``build(rows, structs, keys, slow)`` makes of each block's
    rows decoded, and the rows for the fallback (``build`` may add some)."""
    slow: list[int] = []
    n = len(values)
    if n <= _BLOCK:  # the usual fetch: one block
        return build(*_fast_decode(values, 0, n, decoder, max_bytes, slow), keys, slow), slow
    parts = [build(*_fast_decode(values, a, min(a + _BLOCK, n), decoder, max_bytes, slow), keys, slow)
             for a in range(0, n, _BLOCK)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, slow


def _per_distinct(values: list, ok: Callable[[Any], bool]) -> np.ndarray | bool:
    """``ok`` of each value as a bool array (True: all pass), evaluated once per distinct value
    (batches carry a handful of symbols and keys)."""
    verdict = {v: ok(v) for v in set(values)}
    if all(verdict.values()):
        return True
    return np.fromiter((verdict[v] for v in values), bool, len(values))


def _key_ok(pair: tuple) -> bool:
    k, u = pair
    return k is not None and k.decode("utf-8", "replace") == u


# (key, underlying) -> verdict of the uniform batch (bounded: cleared when it grows)
_UNIFORM_OK: dict[tuple[bytes | None, str], bool] = {}


def _underlying_ok(keys: Sequence[bytes | None], rows: np.ndarray, und: list[str]) -> np.ndarray | bool:
    """Per decoded row (True: all): its underlying is a symbol, and the partitioning contract holds:
    its key (UTF-8) is the underlying."""
    n = len(rows)
    if n == len(keys):
        keys = list(keys)
    elif n and rows[-1] - rows[0] + 1 == n:  # a block's rows, none left out (ascending: contiguous)
        keys = list(keys[rows[0]:rows[0] + n])
    else:
        keys = [keys[i] for i in rows.tolist()]
    # the usual batch, one underlying: equal to the first is cheaper than hashing every fresh string
    if und and und.count(und[0]) == len(und) and keys.count(keys[0]) == len(keys):
        pair = (keys[0], und[0])
        ok = _UNIFORM_OK.get(pair)
        if ok is None:
            if len(_UNIFORM_OK) >= 64:
                _UNIFORM_OK.clear()
            ok = _UNIFORM_OK[pair] = schemas.is_symbol(und[0]) and _key_ok(pair)
        return ok
    return _per_distinct(und, schemas.is_symbol) & _per_distinct(list(zip(keys, und)), _key_ok)


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
    """A 1-D object array of ``items`` (strings: never broadcast as sequences, unlike ``np.array``)."""
    return np.fromiter(items, object, len(items))


def _sorted(rejected: list[Rejected]) -> list[Rejected]:
    rejected.sort(key=lambda r: r.row)
    return rejected


def _keep(cols: dict[str, np.ndarray], ok: np.ndarray, slow: list[int]) -> dict[str, np.ndarray]:
    """The fast rows that passed every batch check; the others go to the fallback (``slow``)."""
    if np.count_nonzero(ok) == len(ok):  # (cheaper than ok.all() on short arrays)
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
    fast, slow = _fast_columns(values, keys, _QUOTE, max_bytes, _quote_block)
    if not slow:
        return QuoteColumns(**fast), []
    rejected: list[Rejected] = []
    ms = _fallback(sorted(slow), values, keys, schemas.parse_option_quote, max_bytes, rejected)
    slow_cols = _quote_columns(np.array([i for i, _ in ms], np.int64), [q for _, q in ms])
    return QuoteColumns(**_merge(fast, slow_cols)), _sorted(rejected)


def _quote_block(rows: np.ndarray, objs: list, keys: Sequence[bytes | None], slow: list[int]
                 ) -> dict[str, np.ndarray]:
    """The columns of a block's quote structs that pass the batch checks (expiry against quote time,
    ``bid <= ask``, the underlying and key rules); the others go to the fallback (``slow``)."""
    und = [o.underlying for o in objs]
    cols = _quote_columns(rows, objs, und)
    ok = _expiry_ok(cols["ts_ns"], cols["expiry_ts_ns"])
    ok &= cols["bid"] <= cols["ask"]
    good = _underlying_ok(keys, rows, und)
    if good is not True:
        ok &= good
    return _keep(cols, ok, slow)


def _quote_columns(rows: np.ndarray, objs: list, und: list[str] | None = None) -> dict[str, np.ndarray]:
    """The columns of quotes, msgspec structs or the reference's dataclasses alike (they share the field
    names); ``und``: their underlyings, if already listed. The numbers go into one buffer in one
    ``struct.pack_into`` (the same bits as a C int64 / double each; one call, not one per column: at
    20-200 rows a chunk's fixed cost dominates); the columns are views of it."""
    n = len(objs)
    buf = np.empty(7 * n + (n + 7) // 8, np.int64)
    struct.pack_into(f"{4 * n}q{3 * n}d{n}s", buf, 0, *[o.ts_ns for o in objs], *[o.expiry_ts_ns for o in objs],
                     *[o.bid_size for o in objs], *[o.ask_size for o in objs], *[o.strike for o in objs],
                     *[o.bid for o in objs], *[o.ask for o in objs], _is_call(objs))
    f8 = buf.view(_F8)
    return {"row": rows, "ts_ns": buf[:n], "expiry_ts_ns": buf[n:2 * n], "strike": f8[4 * n:5 * n],
            "is_call": buf[7 * n:].view(_BOOL)[:n], "bid": f8[5 * n:6 * n], "ask": f8[6 * n:7 * n],
            "bid_size": buf[2 * n:3 * n], "ask_size": buf[3 * n:4 * n],
            "underlying": _objects([o.underlying for o in objs] if und is None else und)}


_CALL = bytes.maketrans(b"CP", b"\x01\x00")


def _is_call(objs: list) -> bytes:
    """``right == "C"`` of each as bytes 1 or 0 (numpy's bools); ``right`` is "C" or "P" in both the
    structs and the reference's dataclasses."""
    return "".join([o.right for o in objs]).encode().translate(_CALL)


# numpy scalars: operands of the column's own type cost less per call than Python ints
_EXPIRY_GRACE = np.int64(schemas.EXPIRY_GRACE_NS)
_EXPIRY_SPAN = np.uint64(schemas.EXPIRY_GRACE_NS + schemas.MAX_EXPIRY_AHEAD_NS)


def _expiry_ok(ts: np.ndarray, expiry: np.ndarray) -> np.ndarray:
    """Expiry sanity as :func:`schemas._expiry`: ``-GRACE <= expiry - ts <= AHEAD``, as one unsigned
    comparison of ``expiry - ts + GRACE`` (no overflow: both are within 2000..2100)."""
    d = expiry - ts
    d += _EXPIRY_GRACE
    return d.view(_U8) <= _EXPIRY_SPAN


# -- open interest ---------------------------------------------------------------------------------

def decode_open_interest(values: Sequence[bytes | None], keys: Sequence[bytes | None], *,
                         max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[OpenInterestColumns, list[Rejected]]:
    """Decode and validate a batch of open-interest values (as :func:`schemas.parse_open_interest`
    plus the key rule); see :func:`decode_quotes`."""
    _check_lengths(values, keys)
    fast, slow = _fast_columns(values, keys, _OPEN_INTEREST, max_bytes, _open_interest_block)
    if not slow:
        return OpenInterestColumns(**fast), []
    rejected: list[Rejected] = []
    ms = _fallback(sorted(slow), values, keys, schemas.parse_open_interest, max_bytes, rejected)
    slow_cols = _open_interest_columns(np.array([i for i, _ in ms], np.int64), [x for _, x in ms])
    return OpenInterestColumns(**_merge(fast, slow_cols)), _sorted(rejected)


def _open_interest_columns(rows: np.ndarray, objs: list) -> dict[str, np.ndarray]:
    """As :func:`_quote_columns`, for open-interest structs or dataclasses alike (same field names)."""
    n = len(objs)
    buf = np.empty(4 * n + (n + 7) // 8, np.int64)
    struct.pack_into(f"{3 * n}q{n}d{n}s", buf, 0, *[o.ts_ns for o in objs], *[o.expiry_ts_ns for o in objs],
                     *[o.open_interest for o in objs], *[o.strike for o in objs], _is_call(objs))
    return {"row": rows, "ts_ns": buf[:n], "expiry_ts_ns": buf[n:2 * n], "strike": buf[3 * n:4 * n].view(_F8),
            "is_call": buf[4 * n:].view(_BOOL)[:n], "open_interest": buf[2 * n:3 * n],
            "underlying": _objects([o.underlying for o in objs])}


def _open_interest_block(rows: np.ndarray, objs: list, keys: Sequence[bytes | None], slow: list[int]
                         ) -> dict[str, np.ndarray]:
    """As :func:`_quote_block` (expiry, underlying and key rules), for open-interest structs."""
    cols = _open_interest_columns(rows, objs)
    ok = _expiry_ok(cols["ts_ns"], cols["expiry_ts_ns"])
    good = _underlying_ok(keys, rows, cols["underlying"].tolist())
    if good is not True:
        ok &= good
    return _keep(cols, ok, slow)


# -- index ticks and daily closes ------------------------------------------------------------------

def _index_columns(rows: np.ndarray, objs: list, *_: Any) -> dict[str, np.ndarray]:
    """Columns of the fast path's index structs, and ``shape_ok``: a tick has a price and neither date
    nor close, a close has date and close but no price."""
    n = len(objs)
    dates = [o.date for o in objs]
    price = [o.price for o in objs]
    close = [o.close for o in objs]
    if dates.count(UNSET) == n and close.count(UNSET) == n and UNSET not in price:  # only ticks
        is_close, shape_ok = np.zeros(n, bool), np.ones(n, bool)
        level, day = price, [""] * n
    else:
        flags = [d is not UNSET for d in dates]
        is_close = np.array(flags, bool)
        shape_ok = np.fromiter([(p is UNSET) == f and (c is UNSET) != f for p, c, f in zip(price, close, flags)],
                               bool, n)
        level = [(c if f else p) for p, c, f in zip(price, close, flags)]
        level = [math.nan if x is UNSET else x for x in level]  # rows of a wrong shape: dropped
        day = [d if f else "" for d, f in zip(dates, flags)]  # a date is 10 characters: "" is none
    buf = np.empty(2 * n, np.int64)
    struct.pack_into(f"{n}q{n}d", buf, 0, *[o.ts_ns for o in objs], *level)
    return dict(row=rows, kind=is_close.astype(np.int8),
                symbol=_objects([o.symbol for o in objs]), underlying=_objects([o.underlying for o in objs]),
                ts_ns=buf[:n], price=buf[n:].view(_F8), date=_objects(day), shape_ok=shape_ok)


def decode_index(values: Sequence[bytes | None], keys: Sequence[bytes | None], *,
                 max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[IndexColumns, list[Rejected]]:
    """Decode and validate a batch of the index topic, ticks and daily closes (as
    :func:`schemas.parse_index_message` plus the key rule); see :func:`decode_quotes`."""
    _check_lengths(values, keys)
    cols, slow = _fast_columns(values, keys, _INDEX, max_bytes, _index_columns)
    ok = cols.pop("shape_ok")
    und = cols["underlying"].tolist()
    ok &= _per_distinct(cols["symbol"].tolist(), schemas.is_symbol) & _underlying_ok(keys, cols["row"], und)
    ok &= _per_distinct(cols["date"].tolist(), lambda d: d == "" or schemas.is_iso_date(d))  # "": no date
    fast = _keep(cols, ok, slow)
    if not slow:
        return IndexColumns(**fast), []
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
