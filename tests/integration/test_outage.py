"""A broker outage of two minutes in the middle of `streamer simulate` and of the worker's run (issue 11).

One flow on a broker of its own (other ports, its own folder), so the shared broker is never stopped:

* the worker consumes the election scenario while two `streamer simulate` processes publish it, paced so
  that both are mid-stream when the broker stops;
* the broker stays down for two minutes; one simulate has the default outage limit and must ride it out,
  the other has ``STREAMER_PUBLISH_OUTAGE_LIMIT_S`` below the outage and must give up with a non-zero exit
  saying how far it got;
* afterwards: every message of the first simulate is on the broker exactly once and in order, the worker
  consumed every one and its triggers and final snapshot equal an offline run of the scenario, readiness
  and ``streamer_worker_up`` went down during the outage and up again, and the worker's log for the outage
  stayed short.
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from conftest import REPO, WorkerProcess, free_ports, read_records
from test_pipeline_recovery import FAST_RECOVERY, Ev, applied, assert_same_as_reference, readyz, wait_for

from streamer import broker, kafka_io, schemas, simulator
from streamer.commands.demo import consumed
from streamer.publisher import topic_of
from streamer.settings import load_settings

pytestmark = pytest.mark.integration
OUTAGE_S = 120.0          # the two minutes, counted from the moment the broker process is gone
GIVE_UP_S = 15            # the second simulate's publish_outage_limit_s: well inside the outage
PUBLISH_WALL_S = 60.0     # each simulate paced to take about this long without an outage
MAX_OUTAGE_LOG_LINES = 200


def simulate(prefix: str, bootstrap: str, rate: float, log: Path, **env: str) -> subprocess.Popen:
    """`streamer simulate` of the fast election scenario as a subprocess (stdout and stderr to ``log``)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streamer.cli", "simulate", "--scenario", "election-2024", "--fast",
             "--rate", f"{rate:.1f}", "--bootstrap", bootstrap, "--topic-prefix", prefix, "--no-progress"],
            env=dict(os.environ, **env), stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def topic_contents(s, topics: list[str]) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every record of ``topics`` as (key, value), per topic in (partition, offset) order."""
    out = defaultdict(list)
    for r in read_records(s, topics):
        out[r.topic].append((r.key, r.value))
    return out


def expected(s, events: list[Ev]) -> dict[str, list[tuple[bytes, bytes]]]:
    """What the scenario puts on each input topic, in publication order (one key, so one partition)."""
    out = defaultdict(list)
    for e in events:
        out[topic_of(s, e.kind)].append((e.key.encode(), schemas.encode(e.msg)))
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_two_minute_outage_mid_simulate_and_mid_worker(tmp_path):
    port, controller_port = free_ports(2)
    cfg = broker.BrokerConfig(port=port, controller_port=controller_port,
                              data_dir=Path(tempfile.mkdtemp(prefix="streamer-outage2-")))
    broker.start(cfg, quiet=True)
    w = sims = None
    try:
        main, short = "outage-", "giveup-"
        s = load_settings(bootstrap=cfg.bootstrap, topic_prefix=main)
        s_short = load_settings(bootstrap=cfg.bootstrap, topic_prefix=short)
        for st in (s, s_short):
            asyncio.run(kafka_io.ensure_topics(st, kafka_io.topics_for(st).all()))
        events = [Ev(e.kind, e.key, e.msg) for e in simulator.generate("election-2024", 0, preset="fast")]
        n = len(events)
        w = WorkerProcess(main, cfg.bootstrap, env=FAST_RECOVERY)
        w.wait_ready()
        rate = n / PUBLISH_WALL_S
        sims = [simulate(main, cfg.bootstrap, rate, tmp_path / "simulate.log"),
                simulate(short, cfg.bootstrap, rate, tmp_path / "simulate-short.log",
                         STREAMER_PUBLISH_OUTAGE_LIMIT_S=str(GIVE_UP_S))]
        inputs = kafka_io.topics_for(s).inputs()
        wait_for(lambda: sum(consumed(w.metrics(), t) for t in inputs) >= 0.2 * n, 120,
                 "a fifth of the scenario consumed", w)
        assert all(p.poll() is None for p in sims), "both simulates are still publishing when the broker stops"
        assert readyz(w)[0] == 200 and w.value("streamer_worker_up") == 1

        # -- the outage ----------------------------------------------------------------------------
        log_at_stop = Path(w.log.name).read_bytes().count(b"\n")
        cpu_at_stop = cpu_seconds(w.proc.pid)
        broker.stop(cfg, quiet=True)
        down_at = time.monotonic()
        seen_ready, seen_up = Counter(), Counter()
        while time.monotonic() - down_at < OUTAGE_S:
            assert w.proc.poll() is None, f"the worker died during the outage: see {w.log.name}"
            code, why = readyz(w)
            seen_ready[(code, why.split(":")[0])] += 1
            seen_up[w.value("streamer_worker_up")] += 1
            time.sleep(0.5)
        # the short-limit simulate gave up during the outage; the other is still waiting
        assert sims[1].poll() is not None, "the simulate with a 15 s limit gave up during a 120 s outage"
        assert sims[0].poll() is None, "the simulate with the default limit waits through the outage"
        cpu_outage = cpu_seconds(w.proc.pid) - cpu_at_stop
        broker.start(cfg, quiet=True)
        wait_for(lambda: readyz(w)[0] == 200 and w.value("streamer_worker_up") == 1, 120, "ready again", w)
        log_lines = Path(w.log.name).read_bytes().count(b"\n") - log_at_stop
        print(f"\noutage: worker wrote {log_lines} log lines and used {cpu_outage:.1f} s CPU in "
              f"{OUTAGE_S:.0f} s; readiness seen {dict(seen_ready)}; worker_up seen {dict(seen_up)}")

        # readiness and the gauge went down during the outage, and came back up
        assert seen_ready[(503, "broker unreachable")] > 0 and seen_up[0.0] > 0
        assert log_lines < MAX_OUTAGE_LOG_LINES, f"{log_lines} log lines for the outage; see {w.log.name}"

        # -- the simulate that waited: exit 0, every message exactly once, in order -----------------
        assert sims[0].wait(300) == 0, (tmp_path / "simulate.log").read_text()
        said = (tmp_path / "simulate.log").read_text()
        assert "waiting for the broker" in said and "the broker is back" in said, said
        want = expected(s, events)
        got = topic_contents(s, inputs)
        assert {t: len(v) for t, v in got.items()} == {t: len(v) for t, v in want.items()}
        assert got == want, "every message once, in publication order (no duplicate, none lost)"

        # -- the simulate that gave up: non-zero exit, how far it got, and that much on the broker ----
        said_short = (tmp_path / "simulate-short.log").read_text()
        assert sims[1].returncode != 0, said_short
        assert "Traceback" not in said_short and "Traceback" not in said, "one clear message, no traceback"
        m = re.search(r"gave up after ([\d,]+) of ([\d,]+) messages acknowledged", said_short)
        assert m, said_short
        acked, total = (int(g.replace(",", "")) for g in m.groups())
        assert total == n and 0 < acked < n
        got_short = topic_contents(s_short, kafka_io.topics_for(s_short).inputs())
        on_broker = sum(map(len, got_short.values()))
        # acknowledged messages are in Kafka; a sent one whose acknowledgement the outage lost may be too
        assert acked <= on_broker < n
        want_short = expected(s_short, events)
        for t, recs in got_short.items():
            assert recs == want_short[t][:len(recs)], f"{t}: a prefix of the scenario, each message once"

        # -- the worker: consumed every message once, same outputs as an offline run ----------------
        wait_for(lambda: applied(w) == n, 240, "every input applied after the outage", w)
        metrics = w.metrics()
        assert {t: consumed(metrics, t) for t in inputs} == {t: float(len(v)) for t, v in want.items()}
        assert_same_as_reference(s, events)
        assert readyz(w)[0] == 200 and w.proc.poll() is None
    finally:
        for p in sims or ():
            if p.poll() is None:
                p.kill()
                p.wait()
        if w is not None:
            w.stop()
        broker.stop(cfg, quiet=True)
