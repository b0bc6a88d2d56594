"""The columnar decoder accepts exactly what the scalar reference parsers accept, with the same
values, and rejects the rest with the same reason and detail.

The corpus mixes the simulator's valid messages, the hostile generator and hypothesis mutations of
valid messages at the JSON-text level (literal numbers the typed decoder and orjson read
differently, duplicate keys, unknown fields, booleans for numbers, huge strings, corrupted bytes,
wrong keys).
"""
from __future__ import annotations

import json
import math
from unittest import mock
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer import decode, schemas, simulator
from streamer.errors import InvalidMessage

NS = 1_000_000_000
TS = 1_730_851_200 * NS  # 2024-11-06 00:00 UTC
EXPIRY = TS + 9 * 86_400 * NS
TOPICS = {
    "quotes": (decode.decode_quotes, schemas.parse_option_quote),
    "index": (decode.decode_index, schemas.parse_index_message),
    "oi": (decode.decode_open_interest, schemas.parse_open_interest),
}
KIND_TOPIC = {"option_quote": "quotes", "index_tick": "index", "daily_close": "index", "open_interest": "oi"}


def reference(topic: str, values, keys, max_bytes: int = schemas.MAX_MESSAGE_BYTES):
    """Row by row with the scalar parser and the key rule: ([(row, msg)], [(row, reason, detail)])."""
    parse = TOPICS[topic][1]
    ok, bad = [], []
    for i, (v, k) in enumerate(zip(values, keys)):
        try:
            msg = parse(v, max_bytes=max_bytes)
            schemas.check_key(k, msg.underlying)
        except InvalidMessage as err:
            bad.append((i, err.reason, err.detail))
        else:
            ok.append((i, msg))
    return ok, bad


def same_float(a: float, b: float) -> bool:
    return float(a).hex() == float(b).hex()  # bit for bit, -0.0 included


def columns_as_messages(topic: str, cols) -> list:
    """The columns back as reference dataclasses, to compare field by field."""
    out = []
    for j in range(len(cols)):
        if topic == "quotes":
            out.append(schemas.OptionQuote(
                cols.underlying[j], int(cols.ts_ns[j]), int(cols.expiry_ts_ns[j]), float(cols.strike[j]),
                "C" if cols.is_call[j] else "P", float(cols.bid[j]), float(cols.ask[j]),
                int(cols.bid_size[j]), int(cols.ask_size[j])))
        elif topic == "oi":
            out.append(schemas.OpenInterest(
                cols.underlying[j], int(cols.ts_ns[j]), int(cols.expiry_ts_ns[j]), float(cols.strike[j]),
                "C" if cols.is_call[j] else "P", int(cols.open_interest[j])))
        elif cols.kind[j] == decode.DAILY_CLOSE:
            out.append(schemas.DailyClose(cols.symbol[j], cols.underlying[j], cols.date[j], int(cols.ts_ns[j]),
                                          float(cols.price[j])))
        else:
            assert cols.date[j] == ""
            out.append(schemas.IndexTick(cols.symbol[j], cols.underlying[j], int(cols.ts_ns[j]),
                                         float(cols.price[j])))
    return out


def assert_matches_reference(topic: str, values, keys, max_bytes: int = schemas.MAX_MESSAGE_BYTES) -> None:
    cols, rejected = TOPICS[topic][0](values, keys, max_bytes=max_bytes)
    ok, bad = reference(topic, values, keys, max_bytes)
    assert [(r.row, r.reason, r.detail) for r in rejected] == bad
    # every column has one entry per accepted message, with the documented dtype
    n = len(cols.row)
    for name in cols.__slots__:
        assert len(getattr(cols, name)) == n, name
    assert cols.row.dtype == np.int64 and cols.ts_ns.dtype == np.int64
    assert cols.row.tolist() == [i for i, _ in ok]
    got = columns_as_messages(topic, cols)
    for (i, want), have in zip(ok, got):
        assert type(have) is type(want), i
        for f in want.__slots__:
            a, b = getattr(have, f), getattr(want, f)
            if isinstance(b, float):
                assert same_float(a, b), (i, f, a, b)
            else:
                assert type(a) is type(b) and a == b, (i, f, a, b)


# ----------------------------------------------------------------------------- corpora


@lru_cache(maxsize=1)
def simulator_corpus() -> dict[str, list[tuple[bytes, bytes]]]:
    out: dict[str, list[tuple[bytes, bytes]]] = {"quotes": [], "index": [], "oi": []}
    for e in simulator.generate("election-2024", 0, preset="fast"):
        out[KIND_TOPIC[e.kind]].append((schemas.encode(e.msg), e.key.encode()))
    return out


def test_simulator_messages_are_all_accepted_identically():
    for topic, recs in simulator_corpus().items():
        values, keys = [v for v, _ in recs], [k for _, k in recs]
        cols, rejected = TOPICS[topic][0](values, keys)
        assert rejected == [] and len(cols) == len(values) > 100
        assert_matches_reference(topic, values, keys)
    cols, _ = decode.decode_index(*zip(*simulator_corpus()["index"]))
    assert {0, 1} == set(cols.kind.tolist()), "ticks and daily closes both present"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hostile_generator_mixed_with_valid_messages(seed):
    rng = np.random.default_rng(seed)
    bad = simulator.malformed(seed, 300)
    for topic, recs in simulator_corpus().items():
        picks = [recs[int(j)] for j in rng.integers(0, len(recs), 400)]
        picks += [(raw, b"SPX") for kind, raw, _ in bad if KIND_TOPIC[kind] == topic]
        picks += [(recs[0][0], b"NDX"), (recs[1][0], None), (None, b"SPX")]
        order = rng.permutation(len(picks))
        values = [picks[int(j)][0] for j in order]
        keys = [picks[int(j)][1] for j in order]
        assert_matches_reference(topic, values, keys)
    # the generator's own expected reasons are what the decoder gives
    for kind, raw, reason in bad:
        if kind == "index_tick":
            _, rejected = decode.decode_index([raw], [b"SPX"])
            assert [r.reason for r in rejected] == [reason], raw[:200]


def test_key_rule():
    q = schemas.encode(schemas.OptionQuote("SPX", TS, EXPIRY, 5900.0, "C", 10.1, 10.5, 5, 7))
    cols, rejected = decode.decode_quotes([q, q, q, q], [b"SPX", b"NDX", None, b"\xffSPX"])
    assert cols.row.tolist() == [0]
    assert [(r.row, r.reason) for r in rejected] == [(1, "key_mismatch"), (2, "key_mismatch"), (3, "key_mismatch")]
    assert rejected[0].detail == "message key 'NDX' is not its underlying 'SPX'"


def test_empty_batch_and_length_mismatch():
    for topic, (fn, _) in TOPICS.items():
        cols, rejected = fn([], [])
        assert len(cols) == 0 and rejected == []
        assert cols.row.dtype == np.int64
        with pytest.raises(ValueError):
            fn([b"{}"], [])


def test_too_large_is_rejected_before_parsing():
    q = schemas.encode(schemas.OptionQuote("SPX", TS, EXPIRY, 5900.0, "C", 10.1, 10.5, 5, 7))
    cols, rejected = decode.decode_quotes([q, b"{" * (len(q) + 1), q], [b"SPX"] * 3, max_bytes=len(q))
    assert cols.row.tolist() == [0, 2]
    assert [(r.row, r.reason) for r in rejected] == [(1, "too_large")]


def test_reference_semantics_win_over_the_typed_decoder():
    """Cases where a typed decoder and orjson + the reference disagree, each with its answer."""
    base = ('"underlying":"SPX","ts_ns":%d,"expiry_ts_ns":%d,"strike":5900.0,"right":"C","ask":10.5'
            % (TS, EXPIRY))
    cases = {
        "bid_size 5.0 is a whole number": ('{%s,"bid":10.1,"bid_size":5.0}' % base, None),
        "schema_version 1.0 equals 1": ('{%s,"bid":10.1,"schema_version":1.0}' % base, None),
        "schema_version true equals 1": ('{%s,"bid":10.1,"schema_version":true}' % base, None),
        "unknown fields are ignored": ('{%s,"bid":10.1,"venue":"CBOE"}' % base, None),
        "duplicate key: the last wins": ('{%s,"bid":"x","bid":10.1}' % base, None),
        "duplicate key, last one bad": ('{%s,"bid":10.1,"bid":-1}' % base, "negative_price"),
        "a bool is not a number": ('{%s,"bid":true}' % base, "wrong_type"),
        "NaN token": ('{%s,"bid":NaN}' % base, "malformed_json"),
        "1e999 overflows": ('{%s,"bid":1e999}' % base, "malformed_json"),
        "invalid UTF-8 in an unknown field": ('{%s,"bid":10.1,"x":"\udcff"}' % base, "malformed_json"),
        "year 9999 beyond 64 bits": ('{%s,"bid":10.1}' % base.replace(str(TS), "253402300799000000000"),
                                     "bad_timestamp"),
        "ts_ns as 1.7e18": ('{%s,"bid":10.1}' % base.replace(str(TS), "1.7308512e18"), "wrong_type"),
        "not an object": ('[{%s,"bid":10.1}]' % base, "not_an_object"),
        "trailing garbage": ('{%s,"bid":10.1} x' % base, "malformed_json"),
    }
    values = [text.encode("utf-8", "surrogateescape") for text, _ in cases.values()]
    cols, rejected = decode.decode_quotes(values, [b"SPX"] * len(values))
    got = {r.row: r.reason for r in rejected}
    for j, (name, (_, reason)) in enumerate(cases.items()):
        assert got.get(j) == reason, name
    assert_matches_reference("quotes", values, [b"SPX"] * len(values))


# ----------------------------------------------------------------------------- hypothesis mutations

VALID = {
    "quotes": {"underlying": "SPX", "ts_ns": TS, "expiry_ts_ns": EXPIRY, "strike": 5900.0, "right": "C",
               "bid": 10.1, "ask": 10.5, "bid_size": 5, "ask_size": 7, "schema_version": 1},
    "oi": {"underlying": "SPX", "ts_ns": TS, "expiry_ts_ns": EXPIRY, "strike": 5900.0, "right": "P",
           "open_interest": 1234, "schema_version": 1},
    "index": {"symbol": "VIX", "underlying": "SPX", "ts_ns": TS, "price": 16.27, "schema_version": 1},
    "close": {"symbol": "SPX", "underlying": "SPX", "date": "2024-11-05", "ts_ns": TS, "close": 5782.76,
              "schema_version": 1},
}
FIELDS = sorted({f for d in VALID.values() for f in d} | {"extra"})
BOUNDS = [schemas.MIN_INDEX_LEVEL, schemas.MAX_INDEX_LEVEL, schemas.MIN_STRIKE, schemas.MAX_STRIKE,
          schemas.MAX_OPTION_PRICE, float(schemas.MAX_CONTRACTS), 0.0]
LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-0", "-0.0", "0", "1E2", "5.0", "1.0", "true", "false",
            "null", "[]", "{}", '""', '"C"', '"P"', '"SPX"', '" SPX"', '"2024-11-05"', '"2024-02-30"',
            "253402300799000000000", "-253402300799000000000", "18446744073709551616", "9223372036854775808",
            "1.7308512e18", "1730851200000000000.0", "4.9e-324", "1e-400", "100000001", "100000000",
            "1e8", "1.0e8", "0.0001", "0.00009999999999999999", "10000000.000000002", "1e7", "999999.9999999999",
            "1000000.0000000001", '"\\u0000"', '"\\ud800"', '"S\\u00e9"', '"' + "Z" * 70 + '"']


def json_text(v) -> str:
    return json.dumps(v, allow_nan=True)


def value_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(LITERALS),
        st.sampled_from(BOUNDS).flatmap(lambda b: st.sampled_from([
            repr(b), repr(math.nextafter(b, math.inf)), repr(math.nextafter(b, -math.inf))])),
        st.integers(-(2**70), 2**70).map(str),
        st.integers(TS - 20 * 86_400 * NS, TS + 13 * 366 * 86_400 * NS).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.floats(0, 2e7).map(repr),
        st.text(max_size=40).map(json_text),
        st.text(alphabet=" SPXVIC\t", min_size=0, max_size=34).map(json_text),
        st.dates().map(lambda d: json_text(d.isoformat())),
    )


@st.composite
def hostile_message(draw) -> tuple[str, bytes, bytes | None]:
    shape = draw(st.sampled_from(sorted(VALID)))
    topic = "index" if shape == "close" else shape
    items = [(k, json_text(v)) for k, v in VALID[shape].items()]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "set", "set", "drop", "dup", "extra"]))
        if op == "set" and items:
            j = draw(st.integers(0, len(items) - 1))
            items[j] = (items[j][0], draw(value_texts()))
        elif op == "drop" and items:
            items.pop(draw(st.integers(0, len(items) - 1)))
        elif op == "dup":
            items.append((draw(st.sampled_from(FIELDS)), draw(value_texts())))
        else:
            items.insert(draw(st.integers(0, len(items))), (draw(st.sampled_from(FIELDS + ["zz"])),
                                                            draw(value_texts())))
    raw = ("{" + ",".join(f"{json.dumps(k)}:{t}" for k, t in items) + "}").encode("utf-8", "surrogatepass")
    corrupt = draw(st.sampled_from(["none"] * 8 + ["truncate", "byte", "wrap", "spaces"]))
    if corrupt == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif corrupt == "byte":
        j = draw(st.integers(0, len(raw)))
        raw = raw[:j] + bytes([draw(st.integers(0, 255))]) + raw[j:]
    elif corrupt == "wrap":
        raw = b"[" + raw + b"]"
    elif corrupt == "spaces":
        raw = b" \n" + raw + b"\t "
    key = draw(st.sampled_from([b"SPX", b"SPX", b"SPX", b"NDX", None, b"\xff", b"SPX "]))
    return topic, raw, key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_message(), min_size=1, max_size=40), st.sampled_from([schemas.MAX_MESSAGE_BYTES, 190]))
def test_columnar_equals_reference_on_hostile_batches(batch, max_bytes):
    for topic in TOPICS:
        recs = [(raw, key) for t, raw, key in batch if t == topic]
        # valid simulator messages around them, so fast and fallback rows interleave
        recs += simulator_corpus()[topic][:5]
        assert_matches_reference(topic, [r for r, _ in recs], [k for _, k in recs], max_bytes)


def _around(*xs: float) -> list[str]:
    out = []
    for x in xs:
        out += [repr(x), repr(math.nextafter(x, math.inf)), repr(math.nextafter(x, -math.inf))]
    return out


_TS_EDGES = [str(t) for t in (schemas.MIN_TS_NS - 1, schemas.MIN_TS_NS, schemas.MAX_TS_NS, schemas.MAX_TS_NS + 1)]
EDGES = {
    "ts_ns": _TS_EDGES + [str(EXPIRY - schemas.MAX_EXPIRY_AHEAD_NS + d) for d in (-1, 0, 1)]
    + [str(EXPIRY + schemas.EXPIRY_GRACE_NS + d) for d in (-1, 0, 1)],
    "expiry_ts_ns": _TS_EDGES + [str(TS - schemas.EXPIRY_GRACE_NS + d) for d in (-1, 0, 1)]
    + [str(TS + schemas.MAX_EXPIRY_AHEAD_NS + d) for d in (-1, 0, 1)],
    # halfway between two doubles, and just either side: both decoders must round alike
    "strike": _around(schemas.MIN_STRIKE, schemas.MAX_STRIKE, 0.0) + ["1e8", "1e-9"] + [
        "5900.00000000000045474735088646411895751953125" + tail for tail in ("", "0000001")] + [
        "5900.000000000000454747350886464118957519531249999", "0." + "0" * 300 + "59e304"],
    "price": _around(schemas.MIN_INDEX_LEVEL, schemas.MAX_INDEX_LEVEL, 0.0),
    "close": _around(schemas.MIN_INDEX_LEVEL, schemas.MAX_INDEX_LEVEL, 0.0),
    "bid": _around(0.0, 10.5, schemas.MAX_OPTION_PRICE) + ["-0.0"],
    "ask": _around(0.0, 10.1, schemas.MAX_OPTION_PRICE) + ["-0.0"],
    "bid_size": [str(schemas.MAX_CONTRACTS + d) for d in (-1, 0, 1)] + ["-1", "0", "5.0", "1e8", "100000001.0"],
    "ask_size": [str(schemas.MAX_CONTRACTS + 1), "1e8", "-0", "-0.0"],
    "open_interest": [str(schemas.MAX_CONTRACTS + d) for d in (-1, 0, 1)] + ["-1", "0", "1e8", "100000001.0"],
    "date": ['"2024-02-30"', '"2023-02-29"', '"2024-02-29"', '"2024/11/05"', '"2024-1-05x"', '"+024-11-05"',
             '"2024-11-05 "', "null"],
    "symbol": ['"' + "S" * 32 + '"', '"' + "S" * 33 + '"', '"S\\tX"', '"S\\u00a0"', '"\\u00e9"', '"S\\u2028"',
               '"S\tX"'],  # the last one: a raw tab, invalid JSON
    "underlying": ['"SPX "', '"SPX\\u0000"', '"' + "S" * 33 + '"', '"S\\u00e9"'],
    "right": ['"c"', '"C "', '"P"'],
    "schema_version": ["1", "1.0", "true", "2", '"1"', "0.9999999999999999", "1.0000000000000002"],
}


@pytest.mark.parametrize("shape", sorted(VALID))
def test_columnar_equals_reference_at_every_bound(shape):
    """Every field of every message shape at and next to each bound the fast path declares."""
    topic = "index" if shape == "close" else shape
    values, keys = [], []
    for f, texts in EDGES.items():
        for t in texts:
            items = [(k, t if k == f else json_text(v)) for k, v in VALID[shape].items()]
            if f not in VALID[shape]:
                items.append((f, t))
            values.append(("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in items) + "}").encode())
            # a bad underlying keyed by itself: only the symbol rule can reject it
            keys.append(json.loads(t).encode() if f == "underlying" else b"SPX")
    cols, rejected = TOPICS[topic][0](values, keys)
    assert len(cols) > 10 and len(rejected) > 10  # both sides of the bounds are exercised
    assert_matches_reference(topic, values, keys)


# ----------------------------------------------------------------------------- plausibility


@pytest.mark.parametrize("topic,over,reason", [
    ("index", {"price": 1e308}, "out_of_range"),
    ("index", {"price": 9.14}, None),         # VIX all-time low close region
    ("index", {"price": 89.53}, None),        # VIX all-time high close
    ("index", {"price": 20_173.89}, None),    # NDX, 5 digits
    ("quotes", {"strike": 1e12}, "out_of_range"),
    ("quotes", {"strike": 1e-9}, "out_of_range"),
    ("quotes", {"bid": 0.0, "ask": 0.05}, None),   # penny options
    ("quotes", {"bid": 1e308, "ask": 1e308}, "out_of_range"),
    ("oi", {"open_interest": 10**18}, "out_of_range"),
    ("oi", {"open_interest": 100_000_000}, None),
])
def test_plausibility_at_the_edge(topic, over, reason):
    d = dict(VALID[topic], **over)
    cols, rejected = TOPICS[topic][0]([json.dumps(d).encode()], [b"SPX"])
    assert [r.reason for r in rejected] == ([reason] if reason else [])
    assert len(cols) == (0 if reason else 1)


def test_year_9999_timestamp_is_bad_timestamp():
    raw = json.dumps(VALID["index"]).replace(str(TS), "253402300799000000000").encode()
    _, rejected = decode.decode_index([raw], [b"SPX"])
    assert [r.reason for r in rejected] == ["bad_timestamp"]


def test_long_wrong_typed_string_gives_a_short_detail():
    raw = json.dumps(dict(VALID["quotes"], bid="9" * 60_000)).encode()
    _, rejected = decode.decode_quotes([raw], [b"SPX"])
    assert [r.reason for r in rejected] == ["wrong_type"] and len(rejected[0].detail) < 200
    dl = schemas.dead_letter(raw, b"SPX", "t", 0, 0, InvalidMessage(rejected[0].reason, rejected[0].detail), TS)
    assert len(dl.error) < 200


def test_a_rejection_goes_straight_into_a_dead_letter():
    values = [b'{"underlying":"SPX","bid":1e999}', b"x" * 2_000_000]
    _, rejected = decode.decode_quotes(values, [b"SPX", b"SPX"])
    for r in rejected:
        dl = schemas.dead_letter(values[r.row], b"SPX", "streamer.option-quotes.v1", 0, r.row, r, TS)
        assert (dl.reason, dl.error) == (r.reason, r.detail)
        assert len(schemas.encode(dl)) < schemas.DEAD_LETTER_MAX_BYTES
        assert dl.payload_len == len(values[r.row])
    assert [r.reason for r in rejected] == ["malformed_json", "too_large"]


def test_any_buffer_type_and_byte_level_oddities():
    q = schemas.encode(schemas.OptionQuote("SPX", TS, EXPIRY, 5900.0, "C", 10.1, 10.5, 5, 7))
    values = [q, bytearray(q), memoryview(q), q.decode(), b"\xef\xbb\xbf" + q, q[:-1] + b",}", b"\r\n" + q,
              q + b"\x00", q.decode().encode("utf-16"), b"", b"  "]
    keys = [b"SPX"] * len(values)
    cols, rejected = decode.decode_quotes(values, keys)
    assert cols.row.tolist() == [0, 1, 2, 3, 6]
    assert {r.reason for r in rejected} == {"malformed_json"}
    assert_matches_reference("quotes", values, keys)


def test_split_by_underlying_keeps_input_order():
    def q(u: str, strike: float) -> bytes:
        return schemas.encode(schemas.OptionQuote(u, TS, EXPIRY, strike, "C", 10.1, 10.5, 5, 7))
    rows = [("SPX", 5900.0), ("NDX", 20000.0), ("SPX", 5905.0), ("RUT", 2300.0), ("NDX", 20100.0)]
    cols, rejected = decode.decode_quotes([q(u, k) for u, k in rows], [u.encode() for u, _ in rows])
    assert rejected == []
    parts = cols.by_underlying()
    assert list(parts) == ["SPX", "NDX", "RUT"]
    for u, part in parts.items():
        assert part.row.tolist() == [i for i, (x, _) in enumerate(rows) if x == u]
        assert part.strike.tolist() == [k for x, k in rows if x == u]
        assert set(part.underlying.tolist()) == {u} and type(part) is decode.QuoteColumns
    one, _ = decode.decode_quotes([q("SPX", 5900.0)] * 3, [b"SPX"] * 3)
    assert one.by_underlying()["SPX"] is one
    assert decode.decode_quotes([], [])[0].by_underlying() == {}
    assert cols.take(cols.strike > 10_000).row.tolist() == [1, 4]


def test_a_decoder_for_every_input_kind_of_the_simulator():
    kinds = {e.kind for e in simulator.generate("election-2024", 0, preset="fast")} - {"daily_close"}
    assert set(decode.DECODERS) == kinds
    assert decode.DECODERS["index_tick"] is decode.decode_index


# ----------------------------------------------------------------------------- blocks and resuming


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_message(), min_size=1, max_size=40), st.integers(1, 5))
def test_tiny_blocks_and_resuming_after_each_failure(batch, block):
    """The fast path decodes a batch a block at a time and, within a block, resumes after each value
    it does not take: with blocks of 1-5 values every boundary meets failures, runs of them, Nones
    and too long values (190 bytes) at every position of a block."""
    with mock.patch.object(decode, "_BLOCK", block):
        for topic in TOPICS:
            recs = [(raw, key) for t, raw, key in batch if t == topic]
            recs = [r for pair in zip(recs, simulator_corpus()[topic]) for r in pair]  # interleaved
            recs += [(None, b"SPX")] + simulator_corpus()[topic][5:8]
            assert_matches_reference(topic, [r for r, _ in recs], [k for _, k in recs], 190)


def test_a_batch_of_several_blocks_with_failures_at_their_edges():
    n = 2 * decode._BLOCK + 300
    hostile = [None, b"{", b" " * 70_000, b'{"underlying":"SPX"}', b"[]", b"\xff"]
    for topic in TOPICS:
        recs = simulator_corpus()[topic]
        values = [recs[i % len(recs)][0] for i in range(n)]
        keys = [b"SPX"] * n
        edges = [0, 1, decode._BLOCK - 1, decode._BLOCK, decode._BLOCK + 1, 2 * decode._BLOCK - 1,
                 2 * decode._BLOCK, n - 2, n - 1]
        for j, i in enumerate(edges):
            values[i] = hostile[j % len(hostile)]
        keys[5] = b"NDX"
        cols, rejected = TOPICS[topic][0](values, keys)
        assert len(cols) == n - len(edges) - 1 and len(rejected) == len(edges) + 1
        assert_matches_reference(topic, values, keys)
