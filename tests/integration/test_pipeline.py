"""The whole pipeline against the real Kafka broker: simulator → Kafka → worker → Kafka → consumer."""
from __future__ import annotations

import base64
from collections import Counter

import pytest
from kafka_helpers import publish, read_topic, settings_for

from streamer import kafka_io, schemas, simulator

pytestmark = pytest.mark.integration
DAY2_NS = 1_730_869_200 * 10**9  # 2024-11-06 00:00 America/New_York


def test_election_scenario_fires_vol_collapse_through_kafka(kafka, prefix, start_worker):
    s = settings_for(kafka, prefix)
    worker = start_worker(prefix)
    sent = publish(s, "election-2024")
    worker.wait_consumed(sent)
    recs = read_topic(s, kafka_io.topics_for(s).triggers, timeout_s=5.0)
    events = [schemas.parse_trigger_event(r.value) for r in recs]
    collapse = [e for e in events if e.rule == "election_vol_collapse"]
    assert collapse, f"no election_vol_collapse trigger among {[e.rule for e in events]}"
    ev = collapse[0]
    assert ev.direction == "buy" and ev.underlying == "SPX"
    assert ev.inputs["vix_change_ratio"] <= -0.15
    assert ev.inputs["vix_change_pct_rank"] <= 0.005  # among the largest drops of the trailing 3 years
    assert ev.inputs["vix_prev_close"] == pytest.approx(20.49, abs=0.01)
    assert ev.estimated_notional_usd is not None
    assert {"leveraged_etf_close_buying"} <= {e.rule for e in events}
    # deterministic id: recomputable by any consumer from the event's own fields
    assert ev.event_id == schemas.event_id(ev.rule, ev.underlying, ev.ts_ns, ev.input_seq)
    # hysteresis: one collapse trigger per session, not one per tick below the threshold
    assert len(collapse) == 1
    assert recs[0].key == b"SPX"
    # the warm-up history (800 daily closes) fires nothing: every trigger is from the scenario
    assert all(e.ts_ns >= DAY2_NS - 86_400 * 10**9 for e in events)


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
    assert any(t.rule == "election_vol_collapse" for t in triggers)
    m = worker.metrics()
    by_reason = {dict(lbl)["reason"]: v for (name, lbl), v in m.items() if name == "streamer_dead_letters_total"}
    assert by_reason == dict(Counter(reason for _, _, reason in bad))


def test_restarted_worker_recovers_state_from_changelog(kafka, prefix, start_worker):
    """History and day 1 into one worker, stop it; day 2 into a fresh process with an empty folder.

    The collapse needs day 1's VIX close and the 3-year rank history, which only the
    changelogged table can provide to the second process.
    """
    s = settings_for(kafka, prefix)
    evs = list(simulator.generate("election-2024", 0, preset="fast"))
    before = [e for e in evs if e.msg.ts_ns < DAY2_NS]
    after = [e for e in evs if e.msg.ts_ns >= DAY2_NS]
    w1 = start_worker(prefix)
    w1.wait_consumed(publish(s, None, events=before))
    w1.stop()
    assert "election_vol_collapse" not in {schemas.parse_trigger_event(r.value).rule
                                           for r in read_topic(s, kafka_io.topics_for(s).triggers, 1.0)}
    w2 = start_worker(prefix)  # new process, new (empty) data dir
    # Publish only once w2 serves: a message published while Faust is still seeking to the
    # committed offsets was seen lost once in ~10 runs (a Faust start-up race; see the notes).
    w2.wait_ready()
    w2.wait_consumed(publish(s, None, events=after))  # w2 counts only what it consumed itself
    trig = [schemas.parse_trigger_event(r.value) for r in read_topic(s, kafka_io.topics_for(s).triggers, 3.0)]
    collapse = [t for t in trig if t.rule == "election_vol_collapse"]
    assert len(collapse) == 1
    vix_close_day1 = [e.msg.price for e in before if e.kind == "index_tick" and e.msg.symbol == "VIX"][-1]
    assert collapse[0].inputs["vix_prev_close"] == vix_close_day1
    assert collapse[0].inputs["vix_change_pct_rank"] <= 0.005
