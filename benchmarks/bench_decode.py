"""Benchmark: decoding input batches — scalar reference parsers vs the columnar decoder; prints JSON.

Run: .venv/bin/python benchmarks/bench_decode.py

Messages are the simulator's (``election-2024``, preset "fast": option quotes, SPX/VIX/VIX9D/VIX3M
ticks, open interest), encoded as the publisher encodes them, cycled to fill batches of 200, 1,000,
10,000 and 20,000 (each value and key its own bytes object, as a consumer hands them over).
"reference" is what the worker did per message: ``schemas.parse_*`` plus the key rule, building
one dataclass per message; "columnar" is ``decode.decode_*`` returning numpy columns.
"columnar_1pct_hostile" replaces 1% of the batch with the hostile generator's messages (they take
the reference path, as rejections always do). Best of 7 repeats (more for small batches: at least
70,000 messages), µs per message.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time

import msgspec
import numpy as np

from streamer import decode, schemas, simulator
from streamer.errors import InvalidMessage

TOPICS = {
    "quotes": ("option_quote", decode.decode_quotes, schemas.parse_option_quote),
    "ticks": ("index_tick", decode.decode_index, schemas.parse_index_message),
    "open_interest": ("open_interest", decode.decode_open_interest, schemas.parse_open_interest),
}


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


def main() -> None:
    events = list(simulator.generate("election-2024", 0, preset="fast", history_days=0))
    hostile = simulator.malformed(0, 400)
    out: dict = {}
    for name, (kind, columnar, parse) in TOPICS.items():
        pool = [schemas.encode(e.msg) for e in events if e.kind == kind]
        bad = [raw for k, raw, _ in hostile if k == kind]
        for n in (200, 1_000, 10_000, 20_000):
            values = [bytes(bytearray(pool[i % len(pool)])) for i in range(n)]
            keys = [bytes(bytearray(b"SPX")) for _ in range(n)]
            repeat = max(7, 70_000 // n)
            mixed = list(values)
            for j, i in enumerate(range(0, n, 100)):  # 1%
                mixed[i] = bad[j % len(bad)]
            cols, rejected = columnar(values, keys)
            assert len(cols) == n and not rejected
            t_ref = best_of(lambda: reference(values, keys, parse), 7)
            t_col = best_of(lambda: columnar(values, keys), repeat)
            t_mix = best_of(lambda: columnar(mixed, keys), repeat)
            out[f"{name}_{n}"] = {
                "reference_us_per_msg": round(t_ref / n * 1e6, 3),
                "columnar_us_per_msg": round(t_col / n * 1e6, 3),
                "speedup": round(t_ref / t_col, 2),
                "columnar_1pct_hostile_us_per_msg": round(t_mix / n * 1e6, 3),
                "mean_message_bytes": round(float(np.mean([len(v) for v in values])), 1),
            }
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
