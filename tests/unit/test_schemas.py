"""The Python message types and the JSON Schema files agree, and edge validation rejects bad input."""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import jsonschema
import pytest

from streamer import schemas
from streamer.errors import InvalidMessage

SCHEMA_DIR = Path(schemas.__file__).parent / "json_schemas"
TS = 1_730_851_200_000_000_000  # 2024-11-06 00:00 UTC
JSON_TYPES = {str: {"string"}, int: {"integer"}, float: {"number"}, dict: {"object"}, type(None): {"null"}}


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
            schemas.event_id("vol_collapse", "SPX", TS, ev_inputs), "vol_collapse", "SPX", TS, "buy",
            "critical", ev_inputs, {"vix_change_ratio_max": -0.15}, "VIX -20.6% vs prior close"),
        "dead_letter": schemas.dead_letter(b"{", None, "t", 0, 5, InvalidMessage("malformed_json", "x"), TS),
    }


@pytest.mark.parametrize("name,msg", sample_messages().items())
def test_encoded_messages_validate_against_schema(name, msg):
    jsonschema.validate(json.loads(schemas.encode(msg)), load_schema(name))


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
    a = schemas.event_id("r", "SPX", TS, {"x": 1.0, "y": 2.0})
    assert a == schemas.event_id("r", "SPX", TS, {"y": 2.0, "x": 1.0})
    assert a != schemas.event_id("r", "SPX", TS, {"x": 1.0, "y": 2.5})
    assert a != schemas.event_id("r", "SPX", TS + 1, {"x": 1.0, "y": 2.0})
    assert a != schemas.event_id("r2", "SPX", TS, {"x": 1.0, "y": 2.0})


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
