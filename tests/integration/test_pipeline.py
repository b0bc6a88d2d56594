"""The whole pipeline against the real Kafka broker: simulator → Kafka → worker → Kafka → consumer."""
from __future__ import annotations

import base64
from collections import Counter

import pytest
from kafka_helpers import publish, read_topic, settings_for

from streamer import kafka_io, schemas, simulator

pytestmark = pytest.mark.integration


def test_election_scenario_fires_vol_collapse_through_kafka(kafka, prefix, start_worker):
    s = settings_for(kafka, prefix)
    worker = start_worker(prefix)
    sent = publish(s, "election-2024")
    worker.wait_consumed(sent)
    recs = read_topic(s, kafka_io.topics_for(s).triggers, timeout_s=5.0)
    events = [schemas.parse_trigger_event(r.value) for r in recs]
    collapse = [e for e in events if e.rule == "vol_collapse"]
    assert collapse, f"no vol_collapse trigger among {[e.rule for e in events]}"
    ev = collapse[0]
    assert ev.direction == "buy" and ev.underlying == "SPX"
    assert ev.inputs["vix_change_ratio"] <= ev.thresholds["vix_change_ratio_max"] <= -0.10
    assert ev.inputs["vix_prev_close"] == pytest.approx(20.49, abs=0.5)
    # deterministic id: recomputable by any consumer from the event's own fields
    assert ev.event_id == schemas.event_id(ev.rule, ev.underlying, ev.ts_ns, ev.inputs)
    # hysteresis: one collapse trigger per session, not one per tick below the threshold
    assert len(collapse) == 1
    assert recs[0].key == b"SPX"


def test_calm_scenario_fires_nothing(kafka, prefix, start_worker):
    s = settings_for(kafka, prefix)
    worker = start_worker(prefix)
    sent = publish(s, "calm")
    m = worker.wait_consumed(sent)
    assert read_topic(s, kafka_io.topics_for(s).triggers, timeout_s=2.0) == []
    # the worker did process it: analytics snapshots were published
    assert read_topic(s, kafka_io.topics_for(s).analytics, timeout_s=2.0, until=lambda r: True)
    assert not any(name == "streamer_dead_letters_total" and v > 0 for (name, _), v in m.items())


def test_malformed_messages_are_dead_lettered_and_good_ones_processed(kafka, prefix, start_worker):
    s = settings_for(kafka, prefix)
    bad = simulator.malformed(7, 24)
    worker = start_worker(prefix)
    sent = publish(s, "election-2024", bad=24, seed=7)
    worker.wait_consumed(sent)
    names = kafka_io.topics_for(s)
    dl = [schemas.DeadLetter(**schemas.loads(r.value)) for r in read_topic(s, names.dead_letters, 3.0)]
    assert len(dl) == len(bad), "every malformed message lands in the DLQ, nothing else does"
    # the original bytes are kept, with a reason that is the one the parser gives
    assert sorted((base64.b64decode(d.payload_b64), d.reason) for d in dl) == \
        sorted((raw, reason) for _, raw, reason in bad)
    assert all(d.source_topic in names.inputs() and d.offset >= 0 for d in dl)
    # and the good messages around them went through: the collapse still fires
    triggers = [schemas.parse_trigger_event(r.value) for r in read_topic(s, names.triggers, 3.0)]
    assert any(t.rule == "vol_collapse" for t in triggers)
    m = worker.metrics()
    by_reason = {dict(lbl)["reason"]: v for (name, lbl), v in m.items() if name == "streamer_dead_letters_total"}
    assert by_reason == dict(Counter(reason for _, _, reason in bad))


def test_restarted_worker_recovers_state_from_changelog(kafka, prefix, start_worker):
    """Day 1 into one worker, stop it; day 2 into a fresh process with an empty local folder.

    The collapse needs day 1's VIX close, which only the changelogged table can provide.
    """
    s = settings_for(kafka, prefix)
    evs = list(simulator.generate("election-2024", 0, preset="fast"))
    ticks = [e for e in evs if e.kind == "index_tick"]
    day2_start = next(e.msg.ts_ns for e in ticks if e.msg.ts_ns - ticks[0].msg.ts_ns > 12 * 3600 * 10**9)
    day1 = [e for e in ticks if e.msg.ts_ns < day2_start]
    day2 = [e for e in ticks if e.msg.ts_ns >= day2_start]
    w1 = start_worker(prefix)
    w1.wait_consumed(publish(s, None, events=day1))
    w1.stop()
    assert read_topic(s, kafka_io.topics_for(s).triggers, timeout_s=1.0) == []
    w2 = start_worker(prefix)  # new process, new (empty) data dir
    # Publish only once w2 serves: a message published while Faust is still seeking to the
    # committed offsets was seen lost once in ~10 runs (a Faust start-up race; see the notes).
    w2.wait_ready()
    w2.wait_consumed(publish(s, None, events=day2))  # w2 counts only what it consumed itself: day 2
    trig = [schemas.parse_trigger_event(r.value) for r in read_topic(s, kafka_io.topics_for(s).triggers, 3.0)]
    assert [t.rule for t in trig] == ["vol_collapse"]
    vix_close_day1 = [e.msg.price for e in day1 if e.msg.symbol == "VIX"][-1]
    assert trig[0].inputs["vix_prev_close"] == vix_close_day1
