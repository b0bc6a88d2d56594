"""The decoders at the edge, under hypothesis (issue 11): whatever the bytes, ``pipeline.decode_chunk`` never
raises; every row is either accepted or rejected (never both, never neither) with a known reason code; and
every accepted row lies within the documented ranges of streamer/schemas.py.

(tests/unit/test_decode.py checks that the columnar decoder agrees with the scalar reference parsers; this
file checks the contract both must keep, on arbitrary input.)
"""
from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer import schemas
from streamer.pipeline import INDEX, OPEN_INTEREST, QUOTES, decode_chunk

NS = 1_000_000_000
TS = 1_730_901_600 * NS  # 2024-11-06 14:00 UTC
EXPIRY = TS + 9 * 86_400 * NS
#: every reason an input message can be dead-lettered with (schemas.py's input parsers and the key rule)
INPUT_REASONS = {"too_large", "malformed_json", "not_an_object", "unknown_schema_version", "missing_field",
                 "bad_symbol", "wrong_type", "bad_timestamp", "non_finite", "non_positive_price", "negative_price",
                 "out_of_range", "crossed_quote", "unknown_right", "bad_expiry", "negative_count", "bad_date",
                 "key_mismatch"}
BASE = {
    INDEX: {"symbol": "VIX", "underlying": "SPX", "ts_ns": TS, "price": 16.5},
    QUOTES: {"underlying": "SPX", "ts_ns": TS, "expiry_ts_ns": EXPIRY, "strike": 5900.0, "right": "C",
             "bid": 10.1, "ask": 10.5, "bid_size": 5, "ask_size": 7},
    OPEN_INTEREST: {"underlying": "SPX", "ts_ns": TS, "expiry_ts_ns": EXPIRY, "strike": 5900.0, "right": "P",
                    "open_interest": 1234},
}
CLOSE = {"symbol": "VIX", "underlying": "SPX", "date": "2024-11-05", "ts_ns": TS - 86_400 * NS, "close": 20.49}

# numbers around every bound, and absurd ones
BOUNDS = [schemas.MIN_TS_NS, schemas.MAX_TS_NS, schemas.MIN_INDEX_LEVEL, schemas.MAX_INDEX_LEVEL,
          schemas.MIN_STRIKE, schemas.MAX_STRIKE, schemas.MAX_OPTION_PRICE, schemas.MAX_CONTRACTS,
          TS - schemas.EXPIRY_GRACE_NS, TS + schemas.MAX_EXPIRY_AHEAD_NS, 0, 1, 2**63, 2**64, 10**30]
numbers = st.one_of(
    st.sampled_from(BOUNDS).flatmap(lambda b: st.sampled_from([b, b - 1, b + 1, b * (1 - 1e-12), b * (1 + 1e-12), -b])),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([1e308, -1e308, 1e-9, 5e-324, 1e12, 1e18]),
)
values = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=40), st.sampled_from(["C", "P", "SPX", ""]),
                   st.lists(st.integers(), max_size=3))


@st.composite
def message(draw, kind: int) -> bytes:
    """A message of ``kind``: a valid one with some fields changed, dropped or added, JSON-encoded with
    NaN/Infinity allowed, sometimes with its bytes corrupted; or arbitrary bytes."""
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(st.binary(max_size=300))
    d = dict(CLOSE if kind == INDEX and shape == 1 else BASE[kind])
    for name in draw(st.lists(st.sampled_from(sorted(d) + ["schema_version", "extra"]), max_size=3)):
        if draw(st.booleans()):
            d[name] = draw(values)
        else:
            d.pop(name, None)
    raw = json.dumps(d, allow_nan=True).encode()  # NaN, Infinity, -Infinity spelled as JavaScript does
    if shape == 2 and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    return raw


@st.composite
def chunk(draw):
    kind = draw(st.sampled_from([INDEX, QUOTES, OPEN_INTEREST]))
    vals = draw(st.lists(st.one_of(message(kind), st.none()), min_size=1, max_size=30))
    keys = draw(st.lists(st.sampled_from([b"SPX", b"NDX", None, b"\xff", b"SPX "]), min_size=len(vals),
                         max_size=len(vals)))
    return kind, vals, keys


def check_ranges(kind: int, t: dict, keys: list, offsets: np.ndarray) -> None:
    """Every accepted row within the documented ranges, finite, with its key as underlying."""
    ts = t["ts_ns"]
    assert ((ts >= schemas.MIN_TS_NS) & (ts <= schemas.MAX_TS_NS)).all()
    for u, off in zip(t["underlying"].tolist(), t["offset"].tolist()):
        assert schemas.is_symbol(u) and keys[int(np.flatnonzero(offsets == off)[0])] == u.encode()
    if kind == INDEX:
        p = t["price"]
        assert np.isfinite(p).all() and ((p >= schemas.MIN_INDEX_LEVEL) & (p <= schemas.MAX_INDEX_LEVEL)).all()
        assert all(schemas.is_symbol(s) for s in t["symbol"].tolist())
        assert all(d == "" or schemas.is_iso_date(d) for d in t["date"].tolist())
        return
    k, e = t["strike"], t["expiry_ts_ns"]
    assert np.isfinite(k).all() and ((k >= schemas.MIN_STRIKE) & (k <= schemas.MAX_STRIKE)).all()
    assert ((e >= ts - schemas.EXPIRY_GRACE_NS) & (e <= ts + schemas.MAX_EXPIRY_AHEAD_NS)).all()
    counts = ["open_interest"] if kind == OPEN_INTEREST else ["bid_size", "ask_size"]
    for c in counts:
        assert ((t[c] >= 0) & (t[c] <= schemas.MAX_CONTRACTS)).all()
    if kind == QUOTES:
        b, a = t["bid"], t["ask"]
        assert np.isfinite(b).all() and np.isfinite(a).all()
        assert ((b >= 0) & (b <= a) & (a > 0) & (a <= schemas.MAX_OPTION_PRICE)).all()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk())
def test_any_chunk_is_accepted_or_rejected_with_a_known_reason(c):
    kind, vals, keys = c
    offsets = np.arange(100, 100 + len(vals), dtype=np.int64)
    table, rejected = decode_chunk(kind, vals, keys, offsets)  # never raises
    accepted = set(table["offset"].tolist())
    rejected_at = [row for row, _, _ in rejected]
    assert len(rejected_at) == len(set(rejected_at)), "a row is rejected once"
    assert accepted.isdisjoint(100 + r for r in rejected_at)
    assert len(accepted) + len(rejected) == len(vals) == len(table["offset"]) + len(rejected)
    assert {reason for _, reason, _ in rejected} <= INPUT_REASONS
    assert all(isinstance(d, str) and len(d) <= 600 for _, _, d in rejected), "details are bounded excerpts"
    check_ranges(kind, table, keys, offsets)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([INDEX, QUOTES, OPEN_INTEREST]), st.lists(st.binary(max_size=2000), min_size=1, max_size=20))
def test_arbitrary_bytes_never_raise(kind, vals):
    offsets = np.arange(len(vals), dtype=np.int64)
    table, rejected = decode_chunk(kind, vals, [b"SPX"] * len(vals), offsets)
    assert len(table["offset"]) + len(rejected) == len(vals)
    assert {reason for _, reason, _ in rejected} <= INPUT_REASONS


@given(st.sampled_from([QUOTES, OPEN_INTEREST]),
       st.sampled_from(["ts_ns", "expiry_ts_ns", "strike"]), st.sampled_from([-1, 0, 1]))
def test_exactly_at_a_bound_is_accepted_and_beyond_it_rejected(kind, name, side):
    """Timestamps, expiries and strikes: the bound itself is in range, one step beyond is not."""
    lo, hi = {"ts_ns": (schemas.MIN_TS_NS, schemas.MAX_TS_NS),
              "expiry_ts_ns": (TS - schemas.EXPIRY_GRACE_NS, TS + schemas.MAX_EXPIRY_AHEAD_NS),
              "strike": (schemas.MIN_STRIKE, schemas.MAX_STRIKE)}[name]
    out = []
    for bound, beyond in ((lo, -1), (hi, 1)):
        d = dict(BASE[kind])
        if name == "ts_ns":  # keep the expiry sane relative to the moved quote time
            d["expiry_ts_ns"] = min(bound + 86_400 * NS, schemas.MAX_TS_NS)
        x = bound + side * beyond * (1 if isinstance(bound, int) else math.ulp(bound))
        d[name] = x
        table, rejected = decode_chunk(kind, [json.dumps(d).encode()], [b"SPX"], np.zeros(1, np.int64))
        out.append((len(table["offset"]), [r for _, r, _ in rejected]))
    for n_ok, reasons in out:
        if side <= 0:  # at the bound, or inside it
            assert (n_ok, reasons) == (1, []), (name, side, out)
        else:
            assert n_ok == 0 and reasons[0] in {"bad_timestamp", "bad_expiry", "out_of_range"}, (name, out)
