#!/usr/bin/env python
"""Per-quote incremental update cost of streamer.core.vix.VixEngine; prints JSON.

Run: .venv/bin/python benchmarks/bench_vix.py [--updates N] [--repeats R]

Two synthetic SPX-like chains in one run: 500 contracts (2 expiries x 125 strikes) and 20,000
contracts (10 expiries x 1,000 strikes). Quotes are Black-Scholes mids (sigma 15%) with a 0.2-point
spread; bids under 0.10 are zero, so both wings end in zero bids as in real chains. Every timed
update hits the near or next VIX term (the worst case: the strip is built and maintained), moving
the bid by one tick either way while keeping its zero/non-zero state (the common tick). Forward
rescans (a tick at K*) happen at their natural rate and are counted. Small and large chains are
timed alternately; best and median of R repeats are reported. ratio = large / small (goal <= 1.25).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.cboe_csv import ny_ts_ns  # noqa: E402
from streamer.core.vix import VixEngine  # noqa: E402

NOW = ny_ts_ns(2024, 1, 5, 16, 15)


def _chain(n_exp: int, n_strikes: int, step: float):
    f, sigma = 4700.0, 0.15
    fridays = [ny_ts_ns(2024, 2, 2, 16), ny_ts_ns(2024, 2, 9, 16)] + [
        ny_ts_ns(2024, 2, 9, 16) + 7 * 86_400 * 10**9 * (i + 1) for i in range(n_exp - 2)]
    k = f + step * (np.arange(n_strikes) - n_strikes // 2)
    rows = []
    for e in fridays:
        t = (e - NOW) / 1e9 / (365 * 86400)
        d1 = (np.log(f / k) + 0.5 * sigma**2 * t) / (sigma * math.sqrt(t))
        d2 = d1 - sigma * math.sqrt(t)
        ncdf = np.vectorize(lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))))
        call = f * ncdf(d1) - k * ncdf(d2)
        put = call - (f - k)
        for right, px in (("C", call), ("P", put)):
            bid = np.where(px - 0.1 < 0.1, 0.0, np.round(px - 0.1, 2))
            for kk, b, m in zip(k, bid, px):
                rows.append((e, float(kk), right, float(b), float(max(b, round(m + 0.1, 2)))))
    return rows


def _engine(rows):
    a = list(zip(*rows))
    return VixEngine.from_arrays(np.array(a[0]), np.array(a[1]), np.array(a[2]), np.array(a[3]),
                                 np.array(a[4]), 0.05)


def _stream(rows, eng, n, seed):
    v = eng.value(NOW)
    terms = {v.near.expiry_ts_ns, v.next.expiry_ts_ns}
    hot = [r for r in rows if r[0] in terms]
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        e, k, r, b, a = hot[rnd.randrange(len(hot))]
        if b > 0:
            b = round(b + (0.05 if (b <= 0.1 or rnd.random() < 0.5) else -0.05), 2)
        a = round(max(a, b) + rnd.choice((0.0, 0.05, 0.1)), 2)
        out.append((e, k, r, b, a))
    return out


def _time(eng, stream) -> float:
    upd = eng.update_quote
    t0 = time.perf_counter_ns()
    for e, k, r, b, a in stream:
        upd(e, k, r, b, a)
    return (time.perf_counter_ns() - t0) / len(stream) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    small_rows, large_rows = _chain(2, 125, 25.0), _chain(10, 1000, 5.0)
    small, large = _engine(small_rows), _engine(large_rows)
    s_stream = _stream(small_rows, small, args.updates, 1)
    l_stream = _stream(large_rows, large, args.updates, 2)
    _time(small, s_stream[:2000]), _time(large, l_stream[:2000])  # warm-up
    rs0, rl0 = small.rescans(), large.rescans()
    ts, tl = [], []
    for _ in range(args.repeats):
        ts.append(_time(small, s_stream))
        tl.append(_time(large, l_stream))
    rescans_s = (small.rescans() - rs0) / (args.repeats * args.updates)
    rescans_l = (large.rescans() - rl0) / (args.repeats * args.updates)
    t0 = time.perf_counter_ns()
    for _ in range(200):
        small.value(NOW)
    val_s = (time.perf_counter_ns() - t0) / 200 / 1e3
    t0 = time.perf_counter_ns()
    for _ in range(200):
        large.value(NOW)
    val_l = (time.perf_counter_ns() - t0) / 200 / 1e3
    out = {
        "benchmark": "vix_incremental_update_quote",
        "python": platform.python_version(), "numpy": np.__version__,
        "updates_per_repeat": args.updates, "repeats": args.repeats,
        "small": {"contracts": len(small_rows), "expiries": 2, "strikes_per_expiry": 125,
                  "us_per_update_best": round(min(ts), 3),
                  "us_per_update_median": round(statistics.median(ts), 3),
                  "rescans_per_update": round(rescans_s, 5), "us_per_value": round(val_s, 2),
                  "vix": round(small.value(NOW).value, 4)},
        "large": {"contracts": len(large_rows), "expiries": 10, "strikes_per_expiry": 1000,
                  "us_per_update_best": round(min(tl), 3),
                  "us_per_update_median": round(statistics.median(tl), 3),
                  "rescans_per_update": round(rescans_l, 5), "us_per_value": round(val_l, 2),
                  "vix": round(large.value(NOW).value, 4)},
    }
    out["ratio_best"] = round(min(tl) / min(ts), 3)
    out["ratio_median"] = round(statistics.median(tl) / statistics.median(ts), 3)
    out["goal_ratio_max"] = 1.25
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
