"""The Python message types and the JSON Schema files agree, and edge validation rejects bad input."""
from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import math
import typing
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer import schemas
from streamer.codecs import dumps
from streamer.errors import InvalidMessage

SCHEMA_DIR = Path(schemas.__file__).parent / "json_schemas"
TS = 1_730_851_200_000_000_000  # 2024-11-06 00:00 UTC
JSON_TYPES = {str: {"string"}, int: {"integer"}, float: {"number"}, dict: {"object"}, type(None): {"null"},
              bool: {"boolean"}}


def load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())


def json_types(tp) -> set[str]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        return set().union(*(json_types(a) for a in typing.get_args(tp)))
    return JSON_TYPES[origin or tp]


@pytest.mark.parametrize("name,cls", schemas.MESSAGE_TYPES.items())
def test_dataclass_matches_schema(name, cls):
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    assert set(fields) == set(schema["properties"]), name
    assert set(schema["required"]) == set(fields), "every field is always present on the wire"
    for f in fields:
        declared = schema["properties"][f].get("type")
        declared = {declared} if isinstance(declared, str) else set(declared)
        ours = json_types(hints[f])
        if ours == {"number"}:  # a JSON integer is a valid number too
            assert declared <= {"number", "integer"}, (name, f)
        else:
            assert declared == ours, (name, f, declared, ours)


def sample_messages():
    ev_inputs = {"vix_change_ratio": -0.206}
    return {
        "index_tick": schemas.IndexTick("VIX", "SPX", TS, 16.27),
        "daily_close": schemas.DailyClose("VIX", "SPX", "2024-11-05", TS - 8 * 3600 * 10**9, 20.49),
        "option_quote": schemas.OptionQuote("SPX", TS, TS + 86_400 * 10**9, 5900.0, "C", 10.1, 10.5, 5, 7),
        "open_interest": schemas.OpenInterest("SPX", TS, TS + 86_400 * 10**9, 5900.0, "P", 1234),
        "analytics_snapshot": schemas.AnalyticsSnapshot("SPX", TS, {"rv_ewma_annual": 0.12, "gex": None}),
        "trigger_event": schemas.TriggerEvent(
            schemas.event_id("vol_collapse", "SPX", TS, 41), "vol_collapse", "SPX", TS, "buy",
            "critical", ev_inputs, {"vix_change_ratio_max": -0.15}, "VIX -20.6% vs prior close", input_seq=41),
        "dead_letter": schemas.dead_letter(b"{", None, "t", 0, 5, InvalidMessage("malformed_json", "x"), TS),
    }


@pytest.mark.parametrize("name,msg", sample_messages().items())
def test_encoded_messages_validate_against_schema(name, msg):
    jsonschema.validate(json.loads(schemas.encode(msg)), load_schema(name))


@pytest.mark.parametrize("name,msg", sample_messages().items())
def test_encode_gives_the_bytes_of_the_plain_dict(name, msg):
    """orjson's dataclass path (encode) and the plain dict of every field agree byte for byte, NaN,
    infinities and None included (the reference: the dataclass as a dict, dumped)."""
    msg = copy.deepcopy(msg)
    if isinstance(msg, schemas.AnalyticsSnapshot):
        msg.values.update(nan=math.nan, inf=math.inf, big=1e308, tiny=5e-324, neg=-0.0)
    assert schemas.encode(msg) == dumps(dataclasses.asdict(msg))


@pytest.mark.parametrize("name", ["index_tick", "daily_close", "option_quote", "open_interest", "trigger_event"])
def test_round_trip_through_parser(name):
    msg = sample_messages()[name]
    assert schemas.PARSERS[name](schemas.encode(msg)) == msg


def quote(**over):
    d = dataclasses.asdict(sample_messages()["option_quote"])
    d.update(over)
    return json.dumps(d).encode()


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "malformed_json"),
    (b"[1,2]", "not_an_object"),
    (quote(bid=11.0, ask=10.0), "crossed_quote"),
    (quote(right="X"), "unknown_right"),
    (quote(ask=0), "non_positive_price"),
    (quote(bid=-1), "negative_price"),
    (quote(strike=-5), "non_positive_price"),
    (quote(ts_ns=12), "bad_timestamp"),
    (quote(ts_ns=1.5e18), "wrong_type"),
    (quote(expiry_ts_ns=TS - 3 * 86_400 * 10**9), "bad_expiry"),
    (quote(bid="1"), "wrong_type"),
    (quote(schema_version=2), "unknown_schema_version"),
    (quote(underlying=""), "bad_symbol"),
    (quote(bid_size=-3), "negative_count"),
    (b'{"symbol":"VIX","underlying":"SPX","ts_ns":1730851200000000000,"price":NaN}', "malformed_json"),
    (b'{"symbol":"VIX","underlying":"SPX","ts_ns":1730851200000000000,"price":1e999}', "malformed_json"),
    (b'{"symbol":"VIX","underlying":"SPX","price":1}', "missing_field"),
])
def test_bad_input_has_a_reason(raw, reason):
    parser = schemas.parse_index_tick if b'"symbol"' in raw else schemas.parse_option_quote
    with pytest.raises(InvalidMessage) as info:
        parser(raw)
    assert info.value.reason == reason


def test_event_id_depends_on_every_input():
    a = schemas.event_id("r", "SPX", TS, 7)
    assert a == schemas.event_id("r", "SPX", TS, 7)
    assert a != schemas.event_id("r", "SPX", TS, 8)
    assert a != schemas.event_id("r", "SPX", TS + 1, 7)
    assert a != schemas.event_id("r2", "SPX", TS, 7)
    assert a != schemas.event_id("r", "NDX", TS, 7)


def test_non_finite_numbers_from_decoded_objects_are_rejected():
    with pytest.raises(InvalidMessage) as info:
        schemas.parse_index_tick({"symbol": "VIX", "underlying": "SPX", "ts_ns": TS, "price": float("inf")})
    assert info.value.reason == "non_finite"


@pytest.mark.parametrize("day", ["2024-13-01", "20241105", "2024-11-5", 20241105, None])
def test_daily_close_needs_an_iso_date(day):
    raw = {"symbol": "SPX", "underlying": "SPX", "date": day, "ts_ns": TS, "close": 5782.76}
    with pytest.raises(InvalidMessage) as info:
        schemas.parse_daily_close(raw)
    assert info.value.reason == "bad_date"


# ----------------------------------------------------------------------------- plausibility at the edge

MAX_TS = 4_102_444_800 * 10**9


def tick(**over) -> dict:
    d = {"symbol": "VIX", "underlying": "SPX", "ts_ns": TS, "price": 16.27}
    d.update(over)
    return d


def oi(**over) -> bytes:
    d = dataclasses.asdict(sample_messages()["open_interest"])
    d.update(over)
    return json.dumps(d).encode()


@pytest.mark.parametrize("price", [9.14, 16.27, 89.53, 5782.76, 20_173.89, 1e-4, 1e7])
def test_real_market_levels_are_plausible(price):
    """VIX at its extremes, SPX 4-digit, NDX 5-digit, and the range's own bounds are accepted."""
    assert schemas.parse_index_tick(tick(price=price)).price == price


@pytest.mark.parametrize("raw,parser,reason", [
    (tick(price=1e308), schemas.parse_index_tick, "out_of_range"),
    (tick(price=1.0000001e7), schemas.parse_index_tick, "out_of_range"),
    (tick(price=9.9e-5), schemas.parse_index_tick, "out_of_range"),
    (tick(price=0.0), schemas.parse_index_tick, "non_positive_price"),
    ({"symbol": "SPX", "underlying": "SPX", "date": "2024-11-05", "ts_ns": TS, "close": 1e9},
     schemas.parse_index_message, "out_of_range"),
    (quote(bid=1e308, ask=1e308), schemas.parse_option_quote, "out_of_range"),
    (quote(bid=10.0, ask=1e6 + 1), schemas.parse_option_quote, "out_of_range"),
    (quote(strike=1e12), schemas.parse_option_quote, "out_of_range"),
    (quote(strike=1e-9), schemas.parse_option_quote, "out_of_range"),
    (quote(bid_size=100_000_001), schemas.parse_option_quote, "out_of_range"),
    (quote(ask_size=1e18), schemas.parse_option_quote, "out_of_range"),
    (oi(open_interest=10**18), schemas.parse_open_interest, "out_of_range"),
    (oi(strike=0.0), schemas.parse_open_interest, "non_positive_price"),
    # timestamps: beyond 64 bits orjson gives a float; out of range is what matters, not the notation
    (quote(ts_ns=253_402_300_799 * 10**9), schemas.parse_option_quote, "bad_timestamp"),
    (quote(expiry_ts_ns=253_402_300_799 * 10**9), schemas.parse_option_quote, "bad_timestamp"),
    (oi(ts_ns=-(10**30)), schemas.parse_open_interest, "bad_timestamp"),
    (quote(ts_ns=MAX_TS + 1), schemas.parse_option_quote, "bad_timestamp"),
    (quote(ts_ns=float(TS)), schemas.parse_option_quote, "wrong_type"),  # in range but not an integer
    (quote(ts_ns=True), schemas.parse_option_quote, "wrong_type"),
])
def test_implausible_values_are_rejected(raw, parser, reason):
    with pytest.raises(InvalidMessage) as info:
        parser(raw)
    assert info.value.reason == reason


def test_plausible_extremes_are_accepted():
    q = schemas.parse_option_quote(quote(bid=0.0, ask=0.05, strike=1e-4, bid_size=100_000_000, ask_size=0))
    assert (q.bid, q.ask, q.strike, q.bid_size) == (0.0, 0.05, 1e-4, 100_000_000)
    assert schemas.parse_open_interest(oi(open_interest=100_000_000.0)).open_interest == 100_000_000


def test_json_schemas_carry_the_documented_ranges():
    q, t, o = load_schema("option_quote")["properties"], load_schema("index_tick")["properties"], \
        load_schema("open_interest")["properties"]
    c = load_schema("daily_close")["properties"]
    for level in (t["price"], c["close"]):
        assert (level["minimum"], level["maximum"]) == (schemas.MIN_INDEX_LEVEL, schemas.MAX_INDEX_LEVEL)
    for strike in (q["strike"], o["strike"]):
        assert (strike["minimum"], strike["maximum"]) == (schemas.MIN_STRIKE, schemas.MAX_STRIKE)
    assert q["bid"]["maximum"] == q["ask"]["maximum"] == schemas.MAX_OPTION_PRICE
    for count in (q["bid_size"], q["ask_size"], o["open_interest"]):
        assert count["maximum"] == schemas.MAX_CONTRACTS


def test_too_large_is_rejected_without_parsing():
    body = quote()
    big = body[:-1] + b', "pad": "' + b"x" * schemas.MAX_MESSAGE_BYTES + b'"}'
    with pytest.raises(InvalidMessage) as info:
        schemas.parse_option_quote(big)
    assert info.value.reason == "too_large"
    # not parsed: invalid JSON of the same size gives the same reason
    with pytest.raises(InvalidMessage) as info:
        schemas.parse_option_quote(b"{" * (schemas.MAX_MESSAGE_BYTES + 1))
    assert info.value.reason == "too_large"
    # the limit is a parameter, and the padded message is valid below a higher one
    assert schemas.parse_option_quote(big, max_bytes=len(big)) == schemas.parse_option_quote(body)
    with pytest.raises(InvalidMessage) as info:
        schemas.parse_option_quote(body, max_bytes=len(body) - 1)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize("field", ["bid", "ts_ns", "underlying", "right", "bid_size", "schema_version",
                                   "expiry_ts_ns"])
def test_details_quote_only_an_excerpt_of_a_huge_field(field):
    d = dataclasses.asdict(sample_messages()["option_quote"])
    d[field] = "Z" * 400_000
    with pytest.raises(InvalidMessage) as info:
        schemas.parse_option_quote(d)
    assert len(info.value.detail) < 200
    assert "ZZZZ" in info.value.detail  # still says what it got
    d[field] = {"nested": ["Z" * 400_000] * 1000}
    with pytest.raises(InvalidMessage) as info:
        schemas.parse_option_quote(d)
    assert len(info.value.detail) < 200


def test_key_must_be_the_underlying():
    schemas.check_key(b"SPX", "SPX")
    for key in (b"NDX", None, b"\xff", b"K" * 1_000_000):
        with pytest.raises(InvalidMessage) as info:
            schemas.check_key(key, "SPX")
        assert info.value.reason == "key_mismatch"
        assert len(info.value.detail) < 200


# ----------------------------------------------------------------------------- dead letters that always fit

def test_dead_letter_keeps_a_small_payload_whole():
    raw = quote(bid="x")
    dl = schemas.dead_letter(raw, b"SPX", "streamer.option-quotes.v1", 2, 9,
                             InvalidMessage("wrong_type", "bid must be a number"), TS)
    assert base64.b64decode(dl.payload_b64) == raw
    assert (dl.payload_len, dl.payload_sha256, dl.payload_truncated) == \
        (len(raw), hashlib.sha256(raw).hexdigest(), False)
    assert base64.b64decode(dl.key_b64) == b"SPX" and not dl.key_truncated
    jsonschema.validate(json.loads(schemas.encode(dl)), load_schema("dead_letter"))


def test_dead_letter_of_a_null_value():
    dl = schemas.dead_letter(None, None, "t", 0, 0, InvalidMessage("malformed_json", "null"), TS)
    assert (dl.payload_b64, dl.payload_len, dl.key_b64) == ("", 0, None)
    assert dl.payload_sha256 == hashlib.sha256(b"").hexdigest()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 4_000_000), key_size=st.one_of(st.none(), st.integers(0, 100_000)),
       detail_size=st.integers(0, 100_000), max_bytes=st.sampled_from([8_192, 65_536, 900_000, 1_000_000]),
       fill=st.sampled_from([b"\x00", b"\xff", b'"', b"a\\\n"]),
       topic=st.sampled_from(["streamer.option-quotes.v1", "\x00" * 300]))
def test_dead_letter_always_fits(size, key_size, detail_size, max_bytes, fill, topic):
    raw = (fill * size)[:size]
    key = None if key_size is None else (b"\x01" * key_size)
    err = InvalidMessage("wrong_type", "\x00\u2028\"" * detail_size)  # worst JSON escaping
    dl = schemas.dead_letter(raw, key, topic, 0, 123, err, TS, max_bytes=max_bytes)
    encoded = schemas.encode(dl)
    assert len(encoded) < max_bytes
    jsonschema.validate(json.loads(encoded), load_schema("dead_letter"))
    kept = base64.b64decode(dl.payload_b64)
    assert raw.startswith(kept)
    assert dl.payload_truncated == (len(kept) < size)
    assert (dl.payload_len, dl.payload_sha256) == (size, hashlib.sha256(raw).hexdigest())
    assert len(dl.error) <= schemas.MAX_ERROR_CHARS
    # it keeps as much of the payload as fits: 3 more bytes (4 base64 chars, and "false" for "true")
    # would not
    if dl.payload_truncated:
        assert len(encoded) + 5 >= max_bytes
    if key is not None:
        assert key.startswith(base64.b64decode(dl.key_b64))
        assert dl.key_truncated == (key_size > schemas.MAX_DEAD_LETTER_KEY_BYTES)
    assert schemas.DeadLetter(**json.loads(encoded)) == dl


def test_dead_letter_bound_too_small_is_an_error():
    with pytest.raises(ValueError):
        schemas.dead_letter(b"x", None, "t", 0, 0, InvalidMessage("r", "d"), TS, max_bytes=100)
