"""Benchmark: decoding input batches — scalar reference parsers vs the columnar decoder; prints JSON.

Run: .venv/bin/python benchmarks/bench_decode.py [--baseline OLD_DECODE.py]

Messages are the simulator's (``election-2024``, preset "fast": option quotes, SPX/VIX/VIX9D/VIX3M
ticks, open interest), encoded as the publisher encodes them, cycled to fill batches of 20, 200,
2,000 and 20,000 (each value and key its own bytes object, as a consumer hands them over; the worker
of the latency set-up fetches every few ms, 20-200 records a chunk).
"reference" is what the worker did per message: ``schemas.parse_*`` plus the key rule, building
one dataclass per message; "columnar" is ``decode.decode_*`` returning numpy columns.
"columnar_1pct_hostile" replaces 1% of the batch with the hostile generator's messages (they take
the reference path, as rejections always do). Best of 7 repeats (more for small batches: at least
70,000 messages), µs per message.

``--baseline``: another version of ``streamer/decode.py`` (e.g. ``git show HEAD~1:streamer/decode.py >
/tmp/old_decode.py``), timed against this one interleaved in this process, call by call on the same
batches (CPU time of the thread; the machine is shared, so only ratios within one run mean much):
"ab" gives each one's median µs per call and per message and the median of the per-call ratios
new/old, for valid batches and 1% hostile ones; both must give the same columns and rejections.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time

import msgspec
import numpy as np

from streamer import decode, schemas, simulator
from streamer.errors import InvalidMessage

TOPICS = {
    "quotes": ("option_quote", "decode_quotes", schemas.parse_option_quote),
    "ticks": ("index_tick", "decode_index", schemas.parse_index_message),
    "open_interest": ("open_interest", "decode_open_interest", schemas.parse_open_interest),
}
SIZES = (20, 200, 2_000, 20_000)


def best_of(fn, repeat: int) -> float:
    """Best wall time over repeats (seconds)."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def reference(values, keys, parse) -> list:
    out = []
    for v, k in zip(values, keys):
        try:
            msg = parse(v)
            schemas.check_key(k, msg.underlying)
            out.append(msg)
        except InvalidMessage:
            pass
    return out


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("baseline_decode", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # msgspec resolves the structs' annotations through it
    spec.loader.exec_module(mod)
    return mod


def same_result(a, b) -> bool:
    (ca, ra), (cb, rb) = a, b
    return ([(r.row, r.reason, r.detail) for r in ra] == [(r.row, r.reason, r.detail) for r in rb]
            and all(getattr(ca, f).tolist() == getattr(cb, f).tolist()
                    if getattr(ca, f).dtype == object else getattr(ca, f).tobytes() == getattr(cb, f).tobytes()
                    for f in ca.__slots__))


def ab(old, new, batches: list[tuple[list, list]], calls: int) -> dict:
    """Call by call, alternating which goes first: median CPU µs per call of each, median ratio."""
    clock = time.thread_time_ns
    t_old, t_new, ratio = [], [], []
    for i in range(calls):
        values, keys = batches[i % len(batches)]
        if i % 2:
            t0 = clock(); new(values, keys); t1 = clock(); old(values, keys); t2 = clock()
            a, b = t2 - t1, t1 - t0
        else:
            t0 = clock(); old(values, keys); t1 = clock(); new(values, keys); t2 = clock()
            a, b = t1 - t0, t2 - t1
        t_old.append(a)
        t_new.append(b)
        ratio.append(b / max(a, 1))
    n = len(batches[0][0])
    mo, mn = statistics.median(t_old) / 1e3, statistics.median(t_new) / 1e3
    return {"old_us_per_call": round(mo, 1), "new_us_per_call": round(mn, 1),
            "old_us_per_msg": round(mo / n, 3), "new_us_per_msg": round(mn / n, 3),
            "median_ratio_new_old": round(statistics.median(ratio), 3), "calls": calls}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="another decode.py to time against this one, interleaved")
    args = ap.parse_args()
    base = load_module(args.baseline) if args.baseline else None
    events = list(simulator.generate("election-2024", 0, preset="fast", history_days=0))
    hostile = simulator.malformed(0, 400)
    out: dict = {"loadavg_at_start": os.getloadavg()}
    for name, (kind, fn_name, parse) in TOPICS.items():
        columnar = getattr(decode, fn_name)
        pool = [schemas.encode(e.msg) for e in events if e.kind == kind]
        bad = [raw for k, raw, _ in hostile if k == kind]
        for n in SIZES:
            # several distinct batches (as many messages as 2 of 20,000), each its own bytes objects
            batches, mixed = [], []
            for b in range(max(1, 40_000 // n)):
                values = [bytes(bytearray(pool[(b * n + i) % len(pool)])) for i in range(n)]
                keys = [bytes(bytearray(b"SPX")) for _ in range(n)]
                m = list(values)
                for i in range(-(b * n) % 100, n, 100):  # 1% (of small batches: every 100th message overall)
                    m[i] = bad[(b * n + i) // 100 % len(bad)]
                batches.append((values, keys))
                mixed.append((m, keys))
            values, keys = batches[0]
            repeat = max(7, 70_000 // n)
            cols, rejected = columnar(values, keys)
            assert len(cols) == n and not rejected
            t_ref = best_of(lambda: reference(values, keys, parse), 7)
            t_col = best_of(lambda: columnar(values, keys), repeat)
            k = max(1, 100 // n)  # batches holding 100 messages, one hostile
            t_mix = best_of(lambda: [columnar(*m) for m in mixed[:k]], max(7, repeat // k)) / k
            row = out[f"{name}_{n}"] = {
                "reference_us_per_msg": round(t_ref / n * 1e6, 3),
                "columnar_us_per_msg": round(t_col / n * 1e6, 3),
                "speedup": round(t_ref / t_col, 2),
                "columnar_1pct_hostile_us_per_msg": round(t_mix / n * 1e6, 3),
                "mean_message_bytes": round(float(np.mean([len(v) for v in values])), 1),
            }
            if base is not None:
                old = getattr(base, fn_name)
                assert all(same_result(old(*b), columnar(*b)) for b in batches[:4] + mixed[:4])
                calls = max(40, 200_000 // n) if n < 20_000 else 40
                row["ab"] = ab(old, columnar, batches, calls)
                row["ab_1pct_hostile"] = ab(old, columnar, mixed, calls)
    out["machine"] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "msgspec": msgspec.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
