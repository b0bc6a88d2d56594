"""The worker against a raw aiokafka consume loop, in one run, on the real local broker.

Inputs (deterministic, seeded): a 20,000-contract SPX option chain (the election-2024 scenario's surface on
2024-11-06, 28 listed expiries from 0DTE to one year, 5-point strikes around the money; bid/ask from the
simulator's model prices), open interest for every contract, and index ticks (SPX, VIX, VIX9D, VIX3M)
interleaved with the quotes. Three measurements:

T. **Throughput** over one "busy window" (default 10 s of event time at 50,000 quotes/s: every contract
   requoted 2.5 times a second, ~3% of rows a little out of order), published before anything consumes it,
   then consumed over the same three topics by
   (a) a raw aiokafka ``getmany`` loop (no decoding): the ceiling (the ratios' denominator);
   (a2) the same with the worker's bulk fetch (``bulk_fetch.getmany_columns``: offsets/keys/values columns,
       no ``ConsumerRecord`` per message), no decoding;
   (b) (a2) + the columnar decoder (``pipeline.decode_chunk`` → ``decode.decode_*``);
   (c) (b) + the per-partition event-time merge (``PartitionMerger``);
   (d) (c) + ``UnderlyingEngine.ingest`` in this process (no outputs, no checkpoints): the engine's share;
   (e) the worker end to end (``python -m streamer.cli worker``, every analytic on): timed from its first
       fetch (its consumer-lag gauge appears) to ``streamer_input_seq{underlying="SPX"}`` reaching the number
       of inputs, and, independently of any polling, from the CreateTimes and ``input_seq`` of its first and
       last analytics snapshots (/metrics is polled once a second only: each scrape costs the worker ~1 ms;
       the end is the CreateTime of the first snapshot reflecting every input).
   Every consumer uses the worker's fetch settings. A last record on each topic one interval later marks the
   end of the window (so the last measured segment closes without the watermark's bounded wait).
S. **Session**: a whole 09:30-16:00 session as a backlog (SPX ticks every second, VIX/VIX9D/VIX3M every 5 s,
   the full chain requoted every ``--session-requote-s``, open interest at the open; the 0DTE expiry settles
   at 16:00) through the worker: its peak resident memory (VmHWM) and state bytes written per input.
L. **Latency** at sustained 5k, 20k and 50k quotes/s: a paced producer stamps ``ts_ns`` = now (= the record's
   CreateTime) on quotes and on SPX ticks (every 100 ms; vol indices every second); the worker runs with
   10 ms event-time segments (``STREAMER_ANALYTICS_INTERVAL_S=0.01``, ``STREAMER_WATERMARK_WAIT_S=0.005``).
   An input's latency is from its CreateTime to the first analytics snapshot with ``ts_ns`` >= its ``ts_ns``
   (the snapshot's own CreateTime, i.e. when the worker produced it; also when a consumer received it), and
   from the broker's append time of each quote (the input topics keep ``LogAppendTime``; ms resolution) to
   the same snapshot: the latter leaves out the feed's own queueing (``feed_to_broker``). The producer
   sends at once (``linger_ms=0``), every millisecond.
   If the worker does not keep up, the lag is reported instead of a latency. The load generator (this
   script's process) publishes at nice 10 (``--generator-nice``): on two cores it would otherwise take the
   worker's core as often as the broker's, which a feed on another machine does not.
P. **Profile** (``--profile``, needs ``pip install py-spy``): py-spy samples the worker during a further T(e)
   pass and a further L run (20k quotes/s); the top functions by own and by inclusive time.

Usage: .venv/bin/python benchmarks/bench_pipeline.py [--runs 2] [--profile]   (starts the broker if needed)
Prints one JSON object (progress on stderr); BENCHMARKS.md records the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamer import broker, kafka_io, simulator  # noqa: E402
from streamer.bulk_fetch import getmany_columns  # noqa: E402
from streamer.commands.demo import scrape  # noqa: E402
from streamer.engine import UnderlyingEngine  # noqa: E402
from streamer.pipeline import INDEX, KINDS, OPEN_INTEREST, QUOTES, PartitionMerger, decode_chunk  # noqa: E402
from streamer.settings import Settings, load_settings  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from kafka_helpers import stop_process  # noqa: E402  (the tests' worker fixture stops workers the same way)

NS = 1_000_000_000
KEY = b"SPX"
DAY = dt.date(2024, 11, 6)           # election-2024, session 2: SPX opens at 5864.89
SCENARIO = simulator.SCENARIOS["election-2024"]
VOL_INDICES = ("VIX", "VIX9D", "VIX3M")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- inputs --------------------------------------------------------------------------------------


@dataclass
class Chain:
    """Contracts by slot: calls then puts of each strike line."""

    expiry: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray

    def __len__(self) -> int:
        return len(self.strike)

    def quotes(self, ts_ns: int, spot: float, levels: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Bid/ask of every contract at ``ts_ns`` on the scenario's surface (expired contracts: NaN)."""
        alive = self.expiry - ts_ns >= simulator.MIN_LIFE_NS
        bid = np.full(len(self), np.nan)
        ask = np.full(len(self), np.nan)
        p, _ = simulator.chain_prices(SCENARIO, ts_ns, spot, levels, self.expiry[alive], self.strike[alive],
                                      self.is_call[alive])
        bid[alive], ask[alive] = simulator.quote_from_price(p)
        return bid, ask


def spx_chain(n: int = 20_000) -> Chain:
    """``n`` contracts: the expiries listed on DAY (dailies, weeklies, monthlies to a year), each with the
    same number of 5-point strikes centred on the open."""
    spec = SCENARIO.sessions[1]
    cfg = simulator.SimConfig(n_dailies=8, weekly_days=60, monthly_days=400)
    exps = [e.ts_ns for e in simulator.list_expiries(DAY, cfg)]
    lines = n // 2
    per = [lines // len(exps) + (i < lines % len(exps)) for i in range(len(exps))]
    atm = round(spec.spx[0] / 5) * 5
    e = np.concatenate([np.full(m, x, np.int64) for x, m in zip(exps, per)])
    k = np.concatenate([atm + 5.0 * (np.arange(m) - m // 2) for m in per])
    return Chain(np.concatenate([e, e]), np.concatenate([k, k]),
                 np.concatenate([np.ones(len(k), bool), np.zeros(len(k), bool)]))


def _levels(t_frac: float) -> dict[str, float]:
    """Vol index levels interpolated through the session (open → close of DAY)."""
    spec = SCENARIO.sessions[1]
    return {s: a + (b - a) * t_frac for s, (a, b) in
            (("VIX9D", spec.vix9d), ("VIX", spec.vix), ("VIX3M", spec.vix3m))}


def quote_value(ts: int, expiry: int, strike: float, is_call: bool, bid: float, ask: float, size: int) -> bytes:
    return orjson.dumps({"underlying": "SPX", "ts_ns": ts, "expiry_ts_ns": expiry, "strike": strike,
                         "right": "C" if is_call else "P", "bid": bid, "ask": ask, "bid_size": size,
                         "ask_size": size, "schema_version": 1})


def tick_value(symbol: str, ts: int, price: float) -> bytes:
    return orjson.dumps({"symbol": symbol, "underlying": "SPX", "ts_ns": ts, "price": round(price, 2),
                         "schema_version": 1})


def oi_value(ts: int, expiry: int, strike: float, is_call: bool, oi: int) -> bytes:
    return orjson.dumps({"underlying": "SPX", "ts_ns": ts, "expiry_ts_ns": expiry, "strike": strike,
                         "right": "C" if is_call else "P", "open_interest": oi, "schema_version": 1})


def open_interest(chain: Chain, ts: int, rng: np.random.Generator) -> list[bytes]:
    spot = SCENARIO.sessions[1].spx[0]
    z = np.log(chain.strike / spot) / 0.1
    oi = np.round(2_000 * np.exp(-0.5 * z * z) * rng.lognormal(0, 0.5, len(chain))).astype(np.int64) + 1
    return [oi_value(ts, e, k, c, o) for e, k, c, o in
            zip(chain.expiry.tolist(), chain.strike.tolist(), chain.is_call.tolist(), oi.tolist())]


@dataclass
class Feed:
    """Raw values per input topic (index, quotes, open interest), in publication order."""

    name: str
    values: list[list[bytes]] = field(default_factory=lambda: [[], [], []])
    n_data: int = 0        # rows the engine applies before the end markers
    first_ts_ns: int = 0
    last_ts_ns: int = 0

    @property
    def total(self) -> int:
        return sum(map(len, self.values))

    def mark_end(self, chain: Chain, interval_ns: int) -> None:
        """One record per topic one interval after the last: every measured segment closes on its own."""
        self.n_data = self.total
        ts = self.last_ts_ns + interval_ns
        self.values[INDEX].append(tick_value("SPX", ts, SCENARIO.sessions[1].spx[0]))
        self.values[QUOTES].append(quote_value(ts, int(chain.expiry[-1]), float(chain.strike[-1]), False, 1.0, 1.1, 1))
        self.values[OPEN_INTEREST].append(oi_value(ts, int(chain.expiry[-1]), float(chain.strike[-1]), False, 1))


def _spot_path(rng: np.random.Generator, n: int, step_s: float) -> np.ndarray:
    spec = SCENARIO.sessions[1]
    sd = spec.spx_day_vol * (step_s / 23_400) ** 0.5
    return spec.spx[0] * np.exp(np.cumsum(rng.normal(0.0, sd, n)))


def busy_window(chain: Chain, seconds: int, quotes_per_s: int, seed: int = 1) -> Feed:
    """``seconds`` of event time from 09:45 ET: the chain requoted at ``quotes_per_s`` (a random permutation
    of the contracts, cycled), SPX ticks every 250 ms and vol-index ticks every second, OI first."""
    rng = np.random.default_rng(seed)
    open_ns, close_ns = simulator.session_bounds_ns(DAY)
    t0 = open_ns + 15 * 60 * NS
    f = Feed("busy_window", first_ts_ns=t0)
    f.values[OPEN_INTEREST] = open_interest(chain, t0, rng)
    spots = _spot_path(rng, seconds * 4 + 1, 0.25)
    order = np.concatenate([rng.permutation(len(chain)) for _ in range(quotes_per_s * seconds // len(chain) + 1)])
    sizes = rng.integers(1, 200, quotes_per_s * seconds).tolist()
    q = 0
    for s in range(seconds):
        base = t0 + s * NS
        lv = _levels((base - open_ns) / (close_ns - open_ns))
        bid, ask = chain.quotes(base, float(spots[4 * s]), lv)
        idx = order[q:q + quotes_per_s]
        ts = base + (np.arange(quotes_per_s) * (NS // quotes_per_s)).astype(np.int64)
        late = rng.random(quotes_per_s) < 0.03            # ~3% of rows up to 2 ms older than their neighbours
        ts[late] = np.maximum(ts[late] - rng.integers(0, 2_000_000, int(late.sum())), base)
        for i, t in zip(idx.tolist(), ts.tolist()):
            f.values[QUOTES].append(quote_value(t, int(chain.expiry[i]), float(chain.strike[i]),
                                                bool(chain.is_call[i]), float(bid[i]), float(ask[i]), sizes[q]))
            q += 1
        for j in range(4):
            f.values[INDEX].append(tick_value("SPX", base + j * NS // 4, float(spots[4 * s + j])))
        for sym in VOL_INDICES:
            f.values[INDEX].append(tick_value(sym, base, lv[sym]))
    f.last_ts_ns = t0 + seconds * NS - 1
    f.mark_end(chain, NS)
    return f


def session(chain: Chain, requote_s: int, seed: int = 2) -> Feed:
    """A whole session as a backlog: OI at the open, SPX ticks every second, vol indices every 5 s, the full
    chain requoted every ``requote_s`` (each contract once, spread over 10 s); contracts stop
    being quoted a minute before they settle (the 0DTE expiry settles at 16:00)."""
    rng = np.random.default_rng(seed)
    open_ns, close_ns = simulator.session_bounds_ns(DAY)
    n_s = (close_ns - open_ns) // NS
    f = Feed("session", first_ts_ns=open_ns)
    f.values[OPEN_INTEREST] = open_interest(chain, open_ns, rng)
    spots = _spot_path(rng, n_s + 1, 1.0)
    requotes = {s: rng.permutation(len(chain)) for s in range(0, n_s, requote_s)}
    spread = (10 * NS) // len(chain)
    for s in range(n_s + 1):
        ts = open_ns + s * NS
        lv = _levels(s / n_s)
        f.values[INDEX].append(tick_value("SPX", ts, float(spots[s])))
        if s % 5 == 0:
            for sym in VOL_INDICES:
                f.values[INDEX].append(tick_value(sym, ts, lv[sym]))
        if s in requotes:
            bid, ask = chain.quotes(ts, float(spots[s]), lv)
            for j, i in enumerate(requotes[s].tolist()):
                if bid[i] == bid[i]:
                    f.values[QUOTES].append(quote_value(ts + j * spread, int(chain.expiry[i]), float(chain.strike[i]),
                                                        bool(chain.is_call[i]), float(bid[i]), float(ask[i]), 10))
    f.last_ts_ns = close_ns
    f.mark_end(chain, NS)
    return f


# -- Kafka plumbing ------------------------------------------------------------------------------


def partition_of(settings: Settings) -> int:
    """The partition of key SPX (the producers' default partitioner: murmur2 of the key)."""
    parts = list(range(settings.partitions))
    return DefaultPartitioner()(KEY, parts, parts)


def new_settings(cfg, tag: str) -> Settings:
    return load_settings(bootstrap=cfg.bootstrap, topic_prefix=f"bench-{tag}-{os.getpid()}-{time.time_ns() % 10**9}-")


def producer(settings: Settings, linger_ms: int = 2) -> AIOKafkaProducer:
    return AIOKafkaProducer(**kafka_io.client_options(settings), linger_ms=linger_ms, max_batch_size=1024 * 1024,
                            max_request_size=4 * 1024 * 1024, acks=1)


async def publish(settings: Settings, feed: Feed) -> float:
    """Every value of the feed to its topic (whole record batches, key SPX); seconds taken."""
    names = kafka_io.topics_for(settings)
    p = partition_of(settings)
    prod = producer(settings)
    await kafka_io.start_client(prod, settings)
    t0 = time.perf_counter()
    try:
        futs = []
        for topic, values in zip(names.inputs(), feed.values):
            batch = prod.create_batch()
            for v in values:
                if batch.append(key=KEY, value=v, timestamp=None) is None:
                    futs.append(await prod.send_batch(batch, topic, partition=p))
                    batch = prod.create_batch()
                    batch.append(key=KEY, value=v, timestamp=None)
                if len(futs) > 64:
                    await asyncio.gather(*futs)
                    futs.clear()
            if batch.record_count():
                futs.append(await prod.send_batch(batch, topic, partition=p))
        await asyncio.gather(*futs)
        return time.perf_counter() - t0
    finally:
        await prod.stop()


def fetch_consumer(settings: Settings, **kw) -> AIOKafkaConsumer:
    """A consumer with the worker's fetch sizes (streamer/app/worker.py)."""
    return AIOKafkaConsumer(**kafka_io.client_options(settings), enable_auto_commit=False,
                            auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
                            fetch_max_bytes=64 * 1024 * 1024, **kw)


async def consume_loop(settings: Settings, total: int, mode: str) -> float:
    """Consume the three input topics from the beginning until ``total`` records: seconds from the first
    non-empty fetch. ``mode``: raw | bulk | decode | merge | engine (see the module docstring, T a-d); every
    mode but raw fetches as the worker does (``getmany_columns``)."""
    names = kafka_io.topics_for(settings)
    kind_of = {t: i for i, t in enumerate(names.inputs())}
    c = fetch_consumer(settings, group_id=None)
    await kafka_io.start_client(c, settings)
    c.assign([TopicPartition(t, p) for t in names.inputs() for p in range(settings.partitions)])
    mergers: dict[int, PartitionMerger] = {}
    engines: dict[str, UnderlyingEngine] = {}
    got, t0 = 0, None
    try:
        while got < total:
            if mode == "raw":
                data = await c.getmany(timeout_ms=100, max_records=settings.fetch_max_records)
            else:
                data = await getmany_columns(c, timeout_ms=100, max_records=settings.fetch_max_records)
            if t0 is None and data:
                t0 = time.perf_counter()
            now = time.monotonic_ns()
            for tp, recs in data.items():
                got += len(recs)
                if mode in ("raw", "bulk") or not len(recs):
                    continue
                kind = kind_of[tp.topic]
                table, _ = decode_chunk(kind, recs.values, recs.keys, recs.offsets)
                if mode == "decode":
                    continue
                m = mergers.get(tp.partition)
                if m is None:
                    m = mergers[tp.partition] = PartitionMerger(int(settings.analytics_interval_s * NS),
                                                                int(settings.watermark_idle_s * NS),
                                                                int(settings.watermark_wait_s * NS))
                hw = c.highwater(tp)
                m.add(kind, table, next_offset=int(recs.offsets[-1]) + 1, highwater=-1 if hw is None else hw,
                      now_ns=now)
            if mode in ("merge", "engine"):
                for tp in c.assignment():
                    m, hw = mergers.get(tp.partition), c.highwater(tp)
                    if m is not None and hw is not None:
                        m.position(kind_of[tp.topic], highwater=hw)
                for m in mergers.values():
                    for b in m.pop_ready(now):
                        if mode == "engine":
                            eng = engines.get(b.underlying)
                            if eng is None:
                                eng = engines[b.underlying] = UnderlyingEngine(b.underlying, settings)
                            eng.ingest(b)
        return time.perf_counter() - t0
    finally:
        await c.stop()


async def read_snapshots(settings: Settings) -> list[tuple[int, int, int, int]]:
    """Every analytics snapshot as (CreateTime ms, ts_ns, input_seq, received ns)."""
    names = kafka_io.topics_for(settings)
    out = []
    async for rec in kafka_io.consume(settings, names.analytics, timeout_s=1.5):
        d = orjson.loads(rec.value)
        out.append((rec.timestamp, d["ts_ns"], d["input_seq"], 0))
    return out


async def delete(settings: Settings) -> None:
    try:
        await kafka_io.delete_topics(settings, kafka_io.topics_for(settings).all())
    except Exception as exc:  # noqa: BLE001 - clean-up only
        log(f"could not delete topics of {settings.topic_prefix}: {exc}")


# -- the worker process --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in kB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


class WorkerProcess:
    """``python -m streamer.cli worker`` on a prefix, its /metrics, its /proc status."""

    def __init__(self, settings: Settings, env: dict[str, str] | None = None, cprofile_to: str | None = None) -> None:
        self.settings = settings
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="streamer-bench-")
        self.logfile = open(os.path.join(self.dir, "worker.log"), "wb")
        e = dict(os.environ, STREAMER_DATA_DIR=self.dir, **(env or {}))
        # under cProfile (when py-spy is not installed): the stats are written when SIGTERM ends the worker
        prof = ["-m", "cProfile", "-o", cprofile_to] if cprofile_to else []
        self.proc = subprocess.Popen([sys.executable, *prof, "-m", "streamer.cli", "worker", "--bootstrap",
                                      settings.bootstrap, "--topic-prefix", settings.topic_prefix,
                                      "--metrics-port", str(self.port)], env=e, cwd=REPO,
                                     stdout=self.logfile, stderr=subprocess.STDOUT)

    def metrics(self) -> dict:
        if self.proc.poll() is not None:
            tail = Path(self.logfile.name).read_text(errors="replace")[-3000:]
            raise SystemExit(f"worker exited with {self.proc.returncode}; log tail:\n{tail}")
        return scrape(self.port)

    def value(self, m: dict, name: str, **labels: str) -> float:
        return m.get((name, tuple(sorted(labels.items()))), 0.0)

    def lag(self, m: dict) -> float | None:
        vals = [v for (n, _), v in m.items() if n == "streamer_consumer_lag_messages"]
        return sum(vals) if vals else None

    def input_seq(self, m: dict) -> float:
        return self.value(m, "streamer_input_seq", underlying="SPX")

    def wait(self, pred, timeout: float, every: float = 0.05) -> dict:
        end = time.monotonic() + timeout
        while True:
            m = self.metrics()
            if m and pred(m):
                return m
            if time.monotonic() > end:
                raise SystemExit(f"worker on {self.settings.topic_prefix}: timed out after {timeout} s "
                                 f"(input_seq {self.input_seq(m) if m else '-'}, lag {self.lag(m) if m else '-'})")
            time.sleep(every)

    def state(self, m: dict) -> dict:
        st = proc_status(self.proc.pid)
        return {"state_bytes_written": int(self.value(m, "streamer_state_bytes_written_total")),
                "checkpoints": int(self.value(m, "streamer_checkpoints_total")),
                "input_seq": int(self.input_seq(m)),
                "conflated_quotes": int(self.value(m, "streamer_conflated_quotes_total")),
                "late_inputs": int(self.value(m, "streamer_late_inputs_total")),
                "vm_rss_mb": round(st.get("VmRSS", 0) / 1024, 1), "vm_hwm_mb": round(st.get("VmHWM", 0) / 1024, 1)}

    def stop(self) -> None:
        stop_process(self.proc)
        self.logfile.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def worker_backlog(settings: Settings, feed: Feed, profile_to: str | None = None) -> dict:
    """Start the worker on topics that already hold ``feed``; time it to the last input applied."""
    w = WorkerProcess(settings)
    spy = None
    try:
        m = w.wait(lambda m: w.lag(m) is not None, 120, every=0.02)
        t_start = time.perf_counter()
        wall_start = time.time()
        if profile_to:
            spy = subprocess.Popen([py_spy(), "record", "--nonblocking", "--function", "-r", "100", "--format",
                                    "raw", "-o", profile_to, "--pid", str(w.proc.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            m = w.metrics()
            if w.input_seq(m) >= feed.n_data:
                break
            time.sleep(1.0)  # /metrics costs the worker ~1 ms per scrape: the end is timed by the snapshots
        t_end = time.perf_counter()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        out = {"seconds_polled": round(t_end - t_start, 3), **w.state(m)}
    finally:
        w.stop()
    snaps = asyncio.run(read_snapshots(settings))
    done = next((s for s in snaps if s[2] >= feed.n_data), None)
    # from the first fetch to the first snapshot reflecting every input (CreateTime, ms), else the polling
    seconds = done[0] / 1e3 - wall_start if done is not None and done[0] / 1e3 > wall_start else t_end - t_start
    out = {"seconds": round(seconds, 3), "msgs_per_s": round(feed.n_data / seconds), **out}
    if len(snaps) >= 2:
        first = snaps[0]
        last = done or snaps[-1]
        if last[0] > first[0]:
            out["msgs_per_s_from_snapshots"] = round((last[2] - first[2]) / ((last[0] - first[0]) / 1e3))
        out["snapshots"] = len(snaps)
    out["state_bytes_per_input"] = round(out["state_bytes_written"] / max(out["input_seq"], 1), 2)
    return out


# -- latency -------------------------------------------------------------------------------------


def live_chain(chain: Chain, now_ns: int) -> Chain:
    """The chain with its expiries moved so that ``now_ns`` (wall clock) is DAY 10:30 ET for it."""
    shift = now_ns - (simulator.session_bounds_ns(DAY)[0] + 3600 * NS)
    return Chain(chain.expiry + shift, chain.strike, chain.is_call)


class QuoteTemplates:
    """Pre-encoded quotes of a :func:`live_chain` with the timestamp left open: head + str(ts_ns) + tail[i]."""

    def __init__(self, chain: Chain, now_ns: int) -> None:
        t = simulator.session_bounds_ns(DAY)[0] + 3600 * NS
        bid, ask = chain.quotes(t, SCENARIO.sessions[1].spx[0], _levels(1 / 6.5))
        chain = live_chain(chain, now_ns)
        self.head = b'{"underlying":"SPX","ts_ns":'
        marker = b"1111111111111111111"
        self.tail = []
        for i in range(len(chain)):
            v = quote_value(int(marker), int(chain.expiry[i]), float(chain.strike[i]), bool(chain.is_call[i]),
                            float(bid[i]), float(ask[i]), 10)
            self.tail.append(v[len(self.head) + len(marker):])
        self.chain = chain

    def value(self, i: int, ts: int) -> bytes:
        return b"%s%d%s" % (self.head, ts, self.tail[i])


async def paced(settings: Settings, tpl: QuoteTemplates, rate: int, seconds: float) -> list[tuple[int, int]]:
    """Publish quotes at ``rate``/s for ``seconds`` (plus SPX ticks every 100 ms, vol indices every second),
    each stamped ts_ns = CreateTime = now. Returns [(ts_ns, count)] per published chunk of quotes."""
    names = kafka_io.topics_for(settings)
    p = partition_of(settings)
    prod = producer(settings, linger_ms=0)  # a market-data feed sends at once (a 2 ms linger: +4.5 ms at p50)
    await kafka_io.start_client(prod, settings)
    rng = np.random.default_rng(rate)
    order = rng.permutation(len(tpl.tail))
    sent, chunks, futs = 0, [], []
    next_tick = 0.0
    spot = SCENARIO.sessions[1].spx[0]
    try:
        t0 = time.perf_counter()
        while True:
            el = time.perf_counter() - t0
            if el >= seconds:
                break
            due = int(rate * el) - sent
            ts = time.time_ns()
            if due > 0:
                batch = prod.create_batch()
                for j in range(sent, sent + due):
                    v = tpl.value(int(order[j % len(order)]), ts)
                    if batch.append(key=KEY, value=v, timestamp=ts // 1_000_000) is None:
                        futs.append(await prod.send_batch(batch, names.option_quotes, partition=p))
                        batch = prod.create_batch()
                        batch.append(key=KEY, value=v, timestamp=ts // 1_000_000)
                futs.append(await prod.send_batch(batch, names.option_quotes, partition=p))
                chunks.append((ts, due))
                sent += due
            if el >= next_tick:
                batch = prod.create_batch()
                spot *= 1.0 + rng.normal(0, 2e-5)
                batch.append(key=KEY, value=tick_value("SPX", ts, spot), timestamp=ts // 1_000_000)
                if int(el * 10) % 10 == 0:
                    for sym, lv in _levels(0.2).items():
                        batch.append(key=KEY, value=tick_value(sym, ts, lv), timestamp=ts // 1_000_000)
                futs.append(await prod.send_batch(batch, names.index_ticks, partition=p))
                next_tick += 0.1
            if len(futs) > 200:
                await asyncio.gather(*futs)
                futs.clear()
            await asyncio.sleep(0.001)
        await asyncio.gather(*futs)
    finally:
        await prod.stop()
    return chunks


async def create_latency_topics(settings: Settings) -> None:
    """The topics of a latency run; the input topics keep the broker's append time as each record's timestamp
    (``LogAppendTime``: the worker reads event time from the payload, so nothing changes for it)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    names = kafka_io.topics_for(settings)
    admin = AIOKafkaAdminClient(**kafka_io.client_options(settings))
    await kafka_io.start_client(admin, settings)
    try:
        await admin.create_topics([NewTopic(t, settings.partitions, 1,
                                            topic_configs={"message.timestamp.type": "LogAppendTime"})
                                   for t in names.inputs()])
    finally:
        await admin.close()
    await kafka_io.ensure_topics(settings, names.all())


async def quote_arrivals(settings: Settings, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns, broker append time ms) of the first ``n`` records of the quotes topic's partition."""
    names = kafka_io.topics_for(settings)
    tp = TopicPartition(names.option_quotes, partition_of(settings))
    c = fetch_consumer(settings, group_id=None)
    await kafka_io.start_client(c, settings)
    ts, appended = [], []
    try:
        c.assign([tp])
        await c.seek_to_beginning(tp)
        while len(ts) < n:
            recs = (await c.getmany(tp, timeout_ms=2000)).get(tp, [])
            if not recs:
                break
            for r in recs:
                ts.append(orjson.loads(r.value)["ts_ns"])
                appended.append(r.timestamp)
    finally:
        await c.stop()
    return np.array(ts[:n], np.int64), np.array(appended[:n], np.int64)


async def watch_snapshots(settings: Settings, out: list, stop: asyncio.Event) -> None:
    """Collect (CreateTime ms, ts_ns, input_seq, received ns) of every analytics snapshot until ``stop``."""
    names = kafka_io.topics_for(settings)
    c = AIOKafkaConsumer(names.analytics, **kafka_io.client_options(settings), group_id=None,
                         auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=5)
    await kafka_io.start_client(c, settings)
    try:
        while not stop.is_set():
            data = await c.getmany(timeout_ms=20)
            now = time.time_ns()
            for recs in data.values():
                for r in recs:
                    d = orjson.loads(r.value)
                    out.append((r.timestamp, d["ts_ns"], d["input_seq"], now))
    finally:
        await c.stop()


def percentiles(x: np.ndarray) -> dict:
    if not len(x):
        return {}
    return {"p50_ms": round(float(np.percentile(x, 50)), 2), "p99_ms": round(float(np.percentile(x, 99)), 2),
            "max_ms": round(float(x.max()), 2)}


def latency_run(cfg, chain: Chain, tpl: QuoteTemplates, rate: int, seconds: float, warmup: float = 2.0,
                profile_to: str | None = None, cprofile_to: str | None = None, generator_nice: int = 10,
                watermark_wait_s: float = 0.005) -> dict:
    settings = new_settings(cfg, f"lat{rate}")
    asyncio.run(create_latency_topics(settings))
    w = WorkerProcess(settings, {"STREAMER_ANALYTICS_INTERVAL_S": "0.01",
                                 "STREAMER_WATERMARK_WAIT_S": f"{watermark_wait_s:g}"}, cprofile_to=cprofile_to)
    try:
        w.wait(lambda m: w.value(m, "streamer_worker_up") == 1.0, 120)
        # the chain and its open interest first (stamped now), applied before the paced run starts
        now = time.time_ns()
        prime = Feed("prime", first_ts_ns=now, last_ts_ns=now)
        prime.values[OPEN_INTEREST] = open_interest(tpl.chain, now, np.random.default_rng(3))
        prime.values[QUOTES] = [tpl.value(i, now) for i in range(len(chain))]
        prime.values[INDEX] = [tick_value("SPX", now, SCENARIO.sessions[1].spx[0])]
        asyncio.run(publish(settings, prime))
        w.wait(lambda m: w.input_seq(m) >= prime.total, 120)
        m0 = w.metrics()
        spy = None if not profile_to else subprocess.Popen(
            [py_spy(), "record", "--nonblocking", "--function", "-r", "100", "--format", "raw", "-o", profile_to,
             "--pid", str(w.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        async def go():
            snaps: list = []
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_snapshots(settings, snaps, stop))
            await asyncio.sleep(0.5)
            t_start = time.perf_counter()
            # the load generator (this process: producer and watcher) yields the CPU to the broker and the
            # worker, as a feed on another machine would; the worker was started before, at nice 0
            os.setpriority(os.PRIO_PROCESS, 0, generator_nice)
            try:
                chunks = await paced(settings, tpl, rate, seconds)
            finally:
                os.setpriority(os.PRIO_PROCESS, 0, 0)
            produce_s = time.perf_counter() - t_start
            produced_until = time.time_ns()
            last_ts = chunks[-1][0]
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and not (snaps and snaps[-1][1] >= last_ts):
                await asyncio.sleep(0.02)
            caught_up_at = time.time_ns()
            stop.set()
            await watcher
            return snaps, chunks, produce_s, caught_up_at, produced_until

        snaps, chunks, produce_s, caught_up_at, produced_until = asyncio.run(go())
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        m1 = w.metrics()
        st = w.state(m1)
        n_prime = len(prime.values[QUOTES])
        arr_ts, arr_ms = asyncio.run(quote_arrivals(settings, n_prime + sum(c[1] for c in chunks)))
        arr_ts, arr_ms = arr_ts[n_prime:], arr_ms[n_prime:]
    finally:
        w.stop()
        asyncio.run(delete(settings))
    ts_in = np.array([c[0] for c in chunks], np.int64)
    n_in = np.array([c[1] for c in chunks], np.int64)
    s = np.array(snaps, np.int64).reshape(-1, 4)
    s = s[np.argsort(s[:, 1], kind="stable")]
    # first output reflecting an input: the earliest-produced snapshot with ts_ns >= the input's ts_ns
    created_ns = s[:, 0] * 1_000_000
    first_created = np.minimum.accumulate(created_ns[::-1])[::-1]
    first_received = np.minimum.accumulate(s[::-1, 3])[::-1]
    pos = np.searchsorted(s[:, 1], ts_in, side="left")
    ok = pos < len(s)
    keep = ok & (ts_in >= ts_in[0] + int(warmup * NS))
    lat_c = np.repeat((first_created[pos[keep]] - ts_in[keep]) / 1e6, n_in[keep])
    lat_r = np.repeat((first_received[pos[keep]] - ts_in[keep]) / 1e6, n_in[keep])
    n_pub = int(n_in.sum())
    # from the broker's append time (LogAppendTime, ms) of each quote: the feed's own queueing left out
    pos_b = np.searchsorted(s[:, 1], arr_ts, side="left")
    keep_b = (pos_b < len(s)) & (arr_ts >= ts_in[0] + int(warmup * NS))
    lat_b = (first_created[pos_b[keep_b]] - arr_ms[keep_b] * 1_000_000) / 1e6
    feed_ms = (arr_ms * 1_000_000 - arr_ts) / 1e6
    # how far behind (event time) the outputs were when the producer stopped
    seen = s[s[:, 3] <= produced_until]
    behind_ms = (produced_until - int(seen[:, 1].max())) / 1e6 if len(seen) else None
    catch_up_ms = (caught_up_at - int(ts_in[-1])) / 1e6
    third = max(len(lat_c) // 3, 1)
    out = {"rate_target": rate, "generator_nice": generator_nice, "watermark_wait_ms": watermark_wait_s * 1e3,
           "quotes_published": n_pub,
           "publish_rate": round(n_pub / produce_s),
           "unreflected_quotes": int(n_in[~ok].sum()), "snapshots": len(s),
           "snapshots_per_s": round(len(s) / (seconds + catch_up_ms / 1e3), 1),
           "after_last_input_until_reflected_ms": round(catch_up_ms, 1),
           "outputs_behind_when_producer_stopped_ms": None if behind_ms is None else round(behind_ms, 1),
           "created": percentiles(lat_c), "received": percentiles(lat_r), "from_broker_append": percentiles(lat_b),
           "feed_to_broker": percentiles(feed_ms),
           "p50_ms_first_third": round(float(np.percentile(lat_c[:third], 50)), 2) if len(lat_c) else None,
           "p50_ms_last_third": round(float(np.percentile(lat_c[-third:], 50)), 2) if len(lat_c) else None,
           "created_last_third": percentiles(lat_c[-third:]),
           "state_bytes_written_during_run": st["state_bytes_written"] - int(w.value(m0, "streamer_state_bytes_written_total")),
           "checkpoints_during_run": st["checkpoints"] - int(w.value(m0, "streamer_checkpoints_total")),
           "inputs_during_run": st["input_seq"] - int(w.input_seq(m0)),
           # rows that came after their segment had closed (applied with the next one): the wait too short
           "late_inputs_during_run": st["late_inputs"] - int(w.value(m0, "streamer_late_inputs_total")),
           "worker": st}
    # keeping up: when the producer stopped, the outputs were less than a second behind it, and the latency
    # did not grow over the run (an input of the very last segment may stay unreflected: no later input)
    out["keeps_up"] = bool(behind_ms is not None and behind_ms < 1000 and out["p50_ms_last_third"] is not None
                           and out["p50_ms_last_third"] < 5 * max(out["p50_ms_first_third"], 5.0))
    ir = max(out["inputs_during_run"], 1)
    out["applied_inputs_per_s"] = round(ir / (produce_s + max(catch_up_ms, 0) / 1e3))
    out["state_bytes_per_input"] = round(out["state_bytes_written_during_run"] / ir, 2)
    return out


# -- profile -------------------------------------------------------------------------------------


def summarize_profile(path: str, top: int = 25) -> dict:
    """py-spy raw (collapsed) stacks → the top functions by own and by inclusive samples."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        n = int(n)
        total += n
        frames = [f.strip() for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n

    def short(f: str) -> str:
        return f.replace(str(REPO) + "/", "").replace(sys.prefix + "/lib/python3.11/site-packages/", "")

    return {"samples": total,
            "own": [(short(f), round(100 * n / total, 1)) for f, n in own.most_common(top)],
            "inclusive": [(short(f), round(100 * n / total, 1)) for f, n in incl.most_common(top * 2)]}


def summarize_cprofile(path: str, top: int = 25) -> dict:
    """Top functions of a cProfile stats file: % of the profiled time, own and inclusive (cumulative)."""
    import pstats
    st = pstats.Stats(path)
    total = st.total_tt or 1.0

    def name(k: tuple) -> str:
        f, line, fn = k
        return f"{fn} ({f.replace(str(REPO) + '/', '').replace(sys.prefix + '/lib/python3.11/site-packages/', '')}:{line})"

    rows = st.stats.items()     # (file, line, fn) -> (primitive calls, calls, own, cumulative, callers)
    own = sorted(rows, key=lambda kv: -kv[1][2])[:top]
    incl = sorted(rows, key=lambda kv: -kv[1][3])[:top * 2]
    return {"profiled_s": round(total, 2),
            "own": [(name(k), round(100 * v[2] / total, 1)) for k, v in own],
            "inclusive": [(name(k), round(100 * v[3] / total, 1)) for k, v in incl]}


# -- main ----------------------------------------------------------------------------------------


async def throughput_inprocess(settings: Settings, feed: Feed) -> dict:
    out = {}
    for mode in ("raw", "bulk", "decode", "merge", "engine"):
        t = await consume_loop(settings, feed.total, mode)
        out[mode] = {"seconds": round(t, 3), "msgs_per_s": round(feed.total / t)}
        log(f"  {mode}: {out[mode]['msgs_per_s']:,} msg/s")
    return out


def throughput_run(cfg, feed: Feed) -> dict:
    settings = new_settings(cfg, "tput")
    asyncio.run(kafka_io.ensure_topics(settings, kafka_io.topics_for(settings).all()))
    try:
        t_pub = asyncio.run(publish(settings, feed))
        log(f"  published {feed.total:,} in {t_pub:.1f} s")
        out = {"publish_msgs_per_s": round(feed.total / t_pub), **asyncio.run(throughput_inprocess(settings, feed))}
        out["worker"] = worker_backlog(settings, feed)
        log(f"  worker: {out['worker']['msgs_per_s']:,} msg/s")
    finally:
        asyncio.run(delete(settings))
    # raw getmany stays the denominator (the ceiling of a plain aiokafka consumer); also against the bulk fetch
    for base in ("raw", "bulk"):
        ref = out[base]["msgs_per_s"]
        out[f"ratio_worker_to_{base}"] = round(out["worker"]["msgs_per_s"] / ref, 3)
        if "msgs_per_s_from_snapshots" in out["worker"]:
            out[f"ratio_worker_to_{base}_from_snapshots"] = round(out["worker"]["msgs_per_s_from_snapshots"] / ref, 3)
        for mode in ("bulk", "decode", "merge", "engine") if base == "raw" else ("decode", "merge", "engine"):
            out[f"ratio_{mode}_to_{base}"] = round(out[mode]["msgs_per_s"] / ref, 3)
    return out


def backlog_worker_run(cfg, feed: Feed, profile_to: str | None = None) -> dict:
    settings = new_settings(cfg, feed.name[:6])
    asyncio.run(kafka_io.ensure_topics(settings, kafka_io.topics_for(settings).all()))
    try:
        asyncio.run(publish(settings, feed))
        return worker_backlog(settings, feed, profile_to)
    finally:
        asyncio.run(delete(settings))


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(a: argparse.Namespace) -> dict:
    cfg = broker.start(quiet=True)
    t_all = time.perf_counter()
    chain = spx_chain(a.contracts)
    t = time.perf_counter()
    window = busy_window(chain, a.window_s, a.quotes_per_s)
    log(f"busy window: {window.total:,} messages built in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    sess = session(chain, a.session_requote_s) if a.session else None
    if sess:
        log(f"session: {sess.total:,} messages built in {time.perf_counter() - t:.1f} s")
    tpl = QuoteTemplates(chain, time.time_ns())
    rates = [int(x) for x in a.rates.split(",") if x]
    res: dict = {"when_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "contracts": len(chain), "expiries": len(np.unique(chain.expiry)),
                 "busy_window": {"messages": window.total, "quotes": len(window.values[QUOTES]),
                                 "index_ticks": len(window.values[INDEX]),
                                 "open_interest": len(window.values[OPEN_INTEREST]),
                                 "event_seconds": a.window_s, "quotes_per_event_s": a.quotes_per_s,
                                 "bytes_per_quote": round(np.mean([len(v) for v in window.values[QUOTES][:1000]]), 1)},
                 "runs": [], "loadavg": {"start": loadavg()}}
    if sess:
        res["session"] = {"messages": sess.total, "quotes": len(sess.values[QUOTES]),
                          "index_ticks": len(sess.values[INDEX]), "open_interest": len(sess.values[OPEN_INTEREST]),
                          "requote_every_s": a.session_requote_s}
    for r in range(a.runs):
        run: dict = {"loadavg_start": loadavg()}
        log(f"run {r + 1}: throughput")
        run["throughput"] = throughput_run(cfg, window)
        if sess:
            log(f"run {r + 1}: session")
            run["session"] = backlog_worker_run(cfg, sess)
            log(f"  session worker: {run['session']['msgs_per_s']:,} msg/s, VmHWM {run['session']['vm_hwm_mb']} MB")
        run["latency"] = []
        for rate in rates:
            log(f"run {r + 1}: latency at {rate:,}/s")
            lr = latency_run(cfg, chain, tpl, rate, a.latency_s, generator_nice=a.generator_nice)
            run["latency"].append(lr)
            log(f"  created p50/p99 {lr['created']}, keeps up: {lr['keeps_up']}")
        run["loadavg_end"] = loadavg()
        res["runs"].append(run)
    if a.profile:
        if not py_spy():
            res["profile"] = "py-spy not installed (pip install py-spy)"
        else:
            log("profile: worker under py-spy over the busy window")
            path = os.path.join(tempfile.mkdtemp(prefix="streamer-prof-"), "worker.txt")
            wr = backlog_worker_run(cfg, window, profile_to=path)
            res["profile"] = {"worker_msgs_per_s_while_sampled": wr["msgs_per_s"], **summarize_profile(path)}
            res["profile"]["raw_stacks"] = path
            rate = 20_000 if 20_000 in rates or not rates else rates[0]
            log(f"profile: worker under py-spy in the latency set-up at {rate:,} quotes/s")
            path = path.replace("worker.txt", "latency.txt")
            lr = latency_run(cfg, chain, tpl, rate, a.latency_s, profile_to=path)
            res["profile_latency"] = {"rate": rate, "keeps_up_while_sampled": lr["keeps_up"],
                                      "applied_inputs_per_s": lr["applied_inputs_per_s"], **summarize_profile(path),
                                      "raw_stacks": path}
    if a.cprofile:
        rate = 20_000 if 20_000 in rates or not rates else rates[0]
        log(f"cprofile: worker under cProfile in the latency set-up at {rate:,} quotes/s")
        path = os.path.join(tempfile.mkdtemp(prefix="streamer-prof-"), "latency.pstats")
        lr = latency_run(cfg, chain, tpl, rate, a.latency_s, cprofile_to=path)
        res["cprofile_latency"] = {"rate": rate, "keeps_up_while_profiled": lr["keeps_up"],
                                   "applied_inputs_per_s": lr["applied_inputs_per_s"],
                                   "snapshots_per_s": lr["snapshots_per_s"], "created": lr["created"],
                                   **summarize_cprofile(path), "stats": path}
    res["loadavg"]["end"] = loadavg()
    res["total_seconds"] = round(time.perf_counter() - t_all, 1)
    import aiokafka
    import faust
    import msgspec
    res["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                      "faust": faust.__version__, "aiokafka": aiokafka.__version__, "numpy": np.__version__,
                      "msgspec": msgspec.__version__, "kafka": broker.KAFKA_VERSION,
                      "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "")}
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="repeat every measurement this many times (default 2)")
    ap.add_argument("--contracts", type=int, default=20_000, help="option contracts in the chain (default 20000)")
    ap.add_argument("--window-s", type=int, default=10, help="event seconds of the busy window (default 10)")
    ap.add_argument("--quotes-per-s", type=int, default=50_000, help="busy window quote rate (default 50000)")
    ap.add_argument("--session-requote-s", type=int, default=600,
                    help="session: the full chain is requoted this often, event seconds (default 600)")
    ap.add_argument("--no-session", dest="session", action="store_false", help="skip the session (memory) run")
    ap.add_argument("--rates", default="5000,20000,50000", help="latency: quotes/s, comma-separated")
    ap.add_argument("--latency-s", type=float, default=10.0, help="latency: seconds per rate (default 10)")
    ap.add_argument("--generator-nice", type=int, default=10,
                    help="latency: niceness of the load generator while it publishes (default 10; 0 = compete "
                         "with the worker and the broker for the cores)")
    ap.add_argument("--profile", action="store_true", help="also sample the worker with py-spy (T(e) once more)")
    ap.add_argument("--cprofile", action="store_true",
                    help="also run the worker under cProfile in the latency set-up (no py-spy needed)")
    print(json.dumps(main(ap.parse_args()), indent=2))
