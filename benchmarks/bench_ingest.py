"""CPU of one segment in the engine: ``UnderlyingEngine.ingest`` per 10 ms event-time segment, in process.

The busy window of ``bench_pipeline.py`` (the 20,000-contract SPX chain, its open interest, SPX and vol-index
ticks) at ``--rate`` quotes/s is decoded and merged as the worker does (``decode_chunk``, ``PartitionMerger``)
into 10 ms segments (the latency set-up's ``analytics_interval_s``); the first event second warms the engine
(chain allocated, OI applied), then every later segment's ``ingest`` is timed. No broker, no outputs: the
engine's share of a live segment (live it costs more: the broker and the feed share the cores and caches).

Usage: .venv/bin/python benchmarks/bench_ingest.py [--rate 20000] [--seconds 3] [--profile]
Prints one JSON object; BENCHMARKS.md (pipeline, session 6) records the figures.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time

import numpy as np

import bench_pipeline as bp
from streamer.engine import UnderlyingEngine
from streamer.pipeline import KINDS, PartitionMerger, decode_chunk
from streamer.settings import load_settings

SEGMENT_S = 0.01


def segments(rate: int, seconds: int) -> tuple[list, int]:
    """The window's closed segments, and the index of the first one after the warm-up second."""
    feed = bp.busy_window(bp.spx_chain(20_000), seconds + 1, rate)
    merger = PartitionMerger(int(SEGMENT_S * bp.NS), 0, 0)
    for kind in range(len(KINDS)):
        vals = feed.values[kind]
        table, _ = decode_chunk(kind, vals, [bp.KEY] * len(vals), np.arange(len(vals), dtype=np.int64))
        merger.add(kind, table, next_offset=len(vals), highwater=len(vals), now_ns=0)
    batches = merger.pop_ready(0, flush=True)
    warm = next(i for i, b in enumerate(batches) if b.end_ns > feed.first_ts_ns + bp.NS)
    return batches, warm


def main(a: argparse.Namespace) -> dict:
    batches, warm = segments(a.rate, a.seconds)
    engine = UnderlyingEngine("SPX", load_settings(analytics_interval_s=SEGMENT_S))
    for b in batches[:warm]:
        engine.ingest(b)
    prof = cProfile.Profile() if a.profile else None
    ms = []
    for b in batches[warm:]:
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        engine.ingest(b)
        if prof:
            prof.disable()
        ms.append((time.perf_counter() - t0) * 1e3)
    t = np.array(ms)
    quotes = [len(b.quotes["ts_ns"]) if b.quotes else 0 for b in batches[warm:]]
    out = {"rate": a.rate, "segments": len(t), "quotes_per_segment_p50": float(np.median(quotes)),
           "ingest_ms": {q: round(float(np.percentile(t, int(q[1:]))), 3) for q in ("p50", "p90", "p99")},
           "ingest_ms_mean": round(float(t.mean()), 3), "loadavg": [round(x, 2) for x in os.getloadavg()]}
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        out["profile_tottime"] = buf.getvalue().splitlines()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=20_000, help="quotes per event second (default 20000: 200 a segment)")
    ap.add_argument("--seconds", type=int, default=3, help="event seconds timed after the warm-up second (default 3)")
    ap.add_argument("--profile", action="store_true", help="also cProfile the timed ingests (top 25 by own time)")
    print(json.dumps(main(ap.parse_args()), indent=2))
