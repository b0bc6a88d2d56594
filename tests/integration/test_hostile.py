"""The standing hostile-input suite (issue 11): every kind of malformed and absurd message
(``simulator.hostile``: every input reason code, 0.9/2/10 MB values, non-UTF-8, deep nesting, duplicate keys,
NaN/Infinity spellings, values just beyond and exactly at each documented bound) mixed into the election
scenario on the real broker, into a running worker.

The input topics are created with a ``max.message.bytes`` that admits the 10 MB values, so the broker takes
them and the worker must fetch them. References: the SPX outputs must equal an offline run of the clean
scenario (``engine.run_offline``); the values at the bounds, which must be accepted, belong to XSP (another
partition) and its outputs must equal an offline run of exactly those records.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from conftest import read_records
from kafka_helpers import publish, read_topic, settings_for
from test_pipeline_recovery import KIND, Ev, applied, assert_same_as_reference, outputs, readyz, wait_for

from streamer import kafka_io, schemas, simulator
from streamer.commands.demo import consumed
from streamer.engine import run_offline
from streamer.settings import Settings

pytestmark = pytest.mark.integration
INPUT_MAX_BYTES = 16 * 1024 * 1024  # the input topics' max.message.bytes: room for the 10 MB values
EDGE = "XSP"  # the accepted at-the-bound values go to this underlying, on the other partition than SPX
MAX_LOG_LINE_CHARS = 2_000  # no input may be echoed into a log line


def create_inputs(s, partitions: int) -> None:
    """The input topics, created before anything else with a max.message.bytes that admits 10 MB values."""
    async def go():
        admin = AIOKafkaAdminClient(**kafka_io.client_options(s))
        await kafka_io.start_client(admin, s)
        try:
            await admin.create_topics([NewTopic(t, partitions, 1, topic_configs={
                "max.message.bytes": str(INPUT_MAX_BYTES)}) for t in kafka_io.topics_for(s).inputs()])
        finally:
            await admin.close()
    asyncio.run(go())


def mix(election: list[Ev], cases: list[simulator.Hostile], seed: int) -> list[Ev]:
    """The hostile messages at random places in the scenario, in their own order (the accepted XSP ones
    carry increasing timestamps, so none of them arrives late)."""
    at = np.sort(np.random.default_rng(seed).integers(0, len(election) + 1, len(cases)))
    out, j = [], 0
    for i, e in enumerate(election + [None]):
        while j < len(cases) and at[j] == i:
            c = cases[j]
            out.append(Ev(c.kind, c.key, c.raw))
            j += 1
        if e is not None:
            out.append(e)
    assert j == len(cases) and len(out) == len(election) + len(cases)
    return out


def finite_or_none(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and math.isfinite(x))


def test_hostile_inputs_mixed_into_the_election_scenario(kafka, prefix, start_worker):
    s = settings_for(kafka, prefix)
    names = kafka_io.topics_for(s)
    parts = list(range(s.partitions))
    assert DefaultPartitioner()(b"SPX", parts, parts) != DefaultPartitioner()(EDGE.encode(), parts, parts)
    election = [Ev(e.kind, e.key, e.msg) for e in simulator.generate("election-2024", 0, preset="fast")]
    cases = simulator.hostile(0, edge_underlying=EDGE)
    bad = [c for c in cases if c.reason is not None]
    edge = [c for c in cases if c.reason is None]
    assert {c.reason for c in bad} >= {"too_large", "key_mismatch", "bad_date", "out_of_range", "malformed_json"}
    assert max(len(c.raw) for c in bad) == 10_000_000
    expected_reason = {(c.key.encode(), c.raw): c.reason for c in bad}
    clean = {(e.key.encode(), schemas.encode(e.msg)) for e in election}
    assert not clean & set(expected_reason), "a hostile message is not also a clean one"

    create_inputs(s, s.partitions)
    w = start_worker(prefix)
    w.wait_ready()
    pid = w.proc.pid
    sent = publish(s, None, events=mix(election, cases, seed=11))
    m = w.wait_consumed(sent, timeout=300)

    # -- every bad message is in the dead-letter topic exactly once, with its reason ---------------------
    records = read_records(s, names.inputs())
    assert Counter(r.topic for r in records) == sent
    want = {(r.topic, r.partition, r.offset): expected_reason[(r.key, r.value)]
            for r in records if (r.key, r.value) in expected_reason}
    assert len(want) == len(bad)
    original = {(r.topic, r.partition, r.offset): r.value for r in records}
    dl_records = read_topic(s, names.dead_letters, 3.0)
    dls = [schemas.DeadLetter(**schemas.loads(r.value)) for r in dl_records]
    got = [((d.source_topic, d.partition, d.offset), d.reason) for d in dls]
    assert len(got) == len(set(got)), "no message dead-lettered twice"
    assert dict(got) == want
    # each record fits the topic (Kafka's default 1 MiB) and describes its original exactly
    assert max(len(r.value) for r in dl_records) < schemas.DEAD_LETTER_MAX_BYTES
    for d in dls:
        raw = original[(d.source_topic, d.partition, d.offset)]
        kept = base64.b64decode(d.payload_b64)
        assert d.payload_len == len(raw) and d.payload_sha256 == hashlib.sha256(raw).hexdigest()
        assert kept == raw if not d.payload_truncated else (raw.startswith(kept) and len(kept) < len(raw))
    assert sum(d.payload_truncated for d in dls) >= 2  # the 2 and 10 MB values
    assert any(d.key_truncated for d in dls)  # the 5,000-byte key

    # -- the worker never crashed, and its counters agree ----------------------------------------------
    assert w.proc.poll() is None and w.proc.pid == pid and readyz(w)[0] == 200
    by_reason = {dict(lbl)["reason"]: v for (name, lbl), v in m.items()
                 if name == "streamer_dead_letters_total" and v}
    assert by_reason == {r: float(n) for r, n in Counter(c.reason for c in bad).items()}
    assert {t: consumed(m, t) for t in names.inputs()} == {t: float(n) for t, n in sent.items()}

    # -- SPX: the same triggers (byte for byte) and final snapshot as the clean scenario offline ---------
    wait_for(lambda: applied(w, "SPX") == len(election), 120, "every clean SPX input applied", w)
    assert_same_as_reference(s, election, "SPX")

    # -- XSP: the values at the bounds were accepted and processed as offline -----------------------------
    want_t, want_snaps, _ = run_offline([(KIND[c.kind], c.key.encode(), c.raw) for c in edge], Settings())
    wait_for(lambda: applied(w, EDGE) == want_snaps[-1].input_seq, 60, "every XSP input applied", w)
    by_id, last = outputs(s, EDGE)
    assert set(by_id) == {t.event_id for t in want_t}
    assert last == schemas.encode(want_snaps[-1])
    assert w.value("streamer_suspect_ticks_total", symbol=EDGE, outcome="held") >= 1, \
        "the print at the upper bound is an implausible jump, held"

    # -- nothing non-finite fired, and no input reached a log line -------------------------------------
    for r in read_topic(s, names.triggers, 2.0):
        t = schemas.parse_trigger_event(r.value)
        assert finite_or_none(t.estimated_notional_usd) and all(map(finite_or_none, t.inputs.values())), t
    longest = max(map(len, Path(w.log.name).read_text(errors="replace").splitlines()))
    assert longest < MAX_LOG_LINE_CHARS, f"a {longest}-character log line; see {w.log.name}"
