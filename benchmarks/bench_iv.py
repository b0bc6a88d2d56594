"""Benchmark: vectorized bs.price vs implied_vol_batch vs scalar implied_vol; prints JSON.

Run: .venv/bin/python benchmarks/bench_iv.py [n]
     .venv/bin/python benchmarks/bench_iv.py --small-batches   (ms per batch of 10-500 options:
     the vector IV solve and ``bs.live_greeks`` vs their scalar mirrors, which ``implied_vols`` and
     the chain use up to ``iv.SCALAR_BELOW`` options; rounds interleaved, CPU time, with ``uptime``)
Quotes are SPX-like: spot 5800, expiries 1 day to 2 years (weighted short), strikes 0.6-1.4 x
spot (concentrated near the money), a skewed smile, calls and puts.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time

import numpy as np

from streamer.core import bs
from streamer.core.iv import (SCALAR_BELOW, IVReason, _build_table, _iv_mirror1, _ivs_vector,
                               implied_vol, implied_vol_batch)


def quotes(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    """n realistic option quotes with their true vols."""
    rng = np.random.default_rng(seed)
    S = 5800.0
    T = np.exp(rng.uniform(math.log(1 / 365), math.log(2.0), n))
    k = np.clip(rng.normal(0.0, 0.08 + 0.1 * np.sqrt(T), n), math.log(0.6), math.log(1.4))
    K = np.round(S * np.exp(k) / 5.0) * 5.0
    m = np.log(K / S) / np.sqrt(T)
    vol = np.clip(0.16 - 0.25 * m + 0.3 * m * m, 0.06, 1.5)
    call = rng.random(n) < 0.5
    r, q = 0.045, 0.013
    P = bs.price(S, K, T, r, q, vol, call)
    return {"S": np.full(n, S), "K": K, "T": T, "r": np.full(n, r), "q": np.full(n, q),
            "vol": vol, "call": call, "P": P}


def best_of(fn, repeat: int) -> float:
    """Best wall time over repeats (seconds)."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def uptime() -> str:
    """Load averages (1, 5, 15 min): the machine is shared."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def small_batches(sizes: tuple[int, ...] = (10, 20, 25, 32, 40, 50, 100, 200, 500),
                  rounds: int = 40) -> dict:
    """ms per batch: the vector IV solve (``iv._ivs_vector``) vs the scalar mirrors
    (``iv._iv_mirror1`` one by one), ``bs.live_greeks`` vs ``bs.live_greeks1``. Each round times
    every variant once on 10 fresh batches, rounds interleaved; the 20th percentile of the rounds'
    CPU time per batch (load from other processes inflates wall time by up to 2x here)."""
    d = quotes(50_000, seed=7)
    r, q = 0.045, 0.013
    rng = np.random.default_rng(3)
    out: dict = {"load_before": uptime(), "scalar_below": SCALAR_BELOW}
    for n in sizes:
        bl = []
        for _ in range(10):
            i = rng.choice(d["P"].shape[0], n, replace=False)
            bl.append(tuple(d[k][i] for k in ("P", "S", "K", "T", "call", "vol")))
        lists = [tuple(a.tolist() for a in b) for b in bl]
        fs = {
            "iv_vector": lambda: [_ivs_vector(P, S, K, T, r, q, c) for P, S, K, T, c, _v in bl],
            "iv_scalar": lambda: [[_iv_mirror1(p, s, k, t, r, q, c) for p, s, k, t, c
                                   in zip(P, S, K, T, C)] for P, S, K, T, C, _v in lists],
            "greeks_vector": lambda: [bs.live_greeks(5800.0, K, T, r, q, v, c)
                                      for _P, _S, K, T, c, v in bl],
            "greeks_scalar": lambda: [[bs.live_greeks1(5800.0, k, t, r, q, v, 1.0 if c else -1.0)
                                       for k, t, v, c in zip(K, T, V, C)]
                                      for _P, _S, K, T, C, V in lists],
        }
        res: dict = {k: [] for k in fs}
        for _ in range(rounds):
            for k, f in fs.items():
                t0 = time.process_time()
                f()
                res[k].append((time.process_time() - t0) / len(bl) * 1e3)
        out[f"ms_per_batch_{n}"] = {k: round(float(np.percentile(v, 20)), 4)
                                    for k, v in res.items()}
    out["load_after"] = uptime()
    return out


def main() -> None:
    if "--small-batches" in sys.argv:
        _build_table()
        print(json.dumps(small_batches(), indent=1))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    d = quotes(n)
    S, K, T, r, q, call, P = d["S"], d["K"], d["T"], d["r"], d["q"], d["call"], d["P"]
    t0 = time.perf_counter()
    _build_table()
    table_ms = (time.perf_counter() - t0) * 1e3
    implied_vol_batch(P[:10], S[:10], K[:10], T[:10], r[:10], q[:10], call[:10])  # warm up
    t_price = best_of(lambda: bs.price(S, K, T, r, q, d["vol"], call), 7)
    t_batch = best_of(lambda: implied_vol_batch(P, S, K, T, r, q, call), 7)
    iv, why = implied_vol_batch(P, S, K, T, r, q, call)
    ns = min(n, 20_000)
    args = [(float(P[i]), float(S[i]), float(K[i]), float(T[i]), float(r[i]), float(q[i]),
             bool(call[i])) for i in range(ns)]

    def scalar() -> None:
        for a in args:
            implied_vol(*a)

    t_scalar = best_of(scalar, 3)
    t_price1 = best_of(lambda: [bs.price1(a[1], a[2], a[3], a[4], a[5], 0.2, a[6])
                                for a in args], 3)
    ok = why == IVReason.OK
    out = {
        "n_options": n,
        "bs_price_vectorized_us_per_option": t_price / n * 1e6,
        "implied_vol_batch_us_per_option": t_batch / n * 1e6,
        "ratio_batch_iv_to_price": t_batch / t_price,
        "implied_vol_scalar_us_per_option": t_scalar / ns * 1e6,
        "price1_scalar_us_per_option": t_price1 / ns * 1e6,
        "guess_table_build_ms": table_ms,
        "fraction_ok": float(ok.mean()),
        "reasons": {IVReason(int(k)).name: int(c) for k, c in zip(*np.unique(why, return_counts=True))},
        "max_abs_iv_error_vs_true_ok": float(np.max(np.abs(iv[ok] - d["vol"][ok]))),
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
