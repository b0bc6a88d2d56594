"""Benchmark streamer.core.chain: per-quote update cost at 500 vs 20,000 contracts, spot-tick cost.

Standalone: ``.venv/bin/python benchmarks/bench_chain.py`` prints one JSON object.
Per-quote cost = on_quote with a vendor IV (greeks at the eval point + O(grid) profile row).
The 500/20,000 ratio should stay near 1 (goal ≤ 1.25): nothing in the update scans the chain.
"""
from __future__ import annotations

import json
import time

import numpy as np

from streamer.core.chain import NS_PER_DAY, ChainConfig, ChainState

T0 = 1_704_466_800 * 10**9  # 2024-01-05 10:00 ET
SPOT = 4700.0


def build(n_contracts: int, seed: int = 1) -> tuple[ChainState, list]:
    """A chain of about n contracts: expiries × strikes × {C, P}, loaded via the vectorized path."""
    n_exp = 5 if n_contracts <= 1000 else 50
    n_k = max(2, n_contracts // (2 * n_exp))
    exps = [T0 + int(d * NS_PER_DAY) for d in np.geomspace(1, 700, n_exp)]
    ks = np.linspace(SPOT * 0.6, SPOT * 1.4, n_k).round(0)
    e, k, r = (np.array(a).ravel() for a in np.meshgrid(exps, ks, ["C", "P"], indexing="ij"))
    rng = np.random.default_rng(seed)
    iv = 0.12 + 0.4 * np.abs(k / SPOT - 1.0)
    ch = ChainState(SPOT, T0, ChainConfig(rate=0.05, div_yield=0.013, auto_reprice=False))
    ch.load_arrays(e.astype(np.int64), k, r, np.full(e.size, 10.0), np.full(e.size, 10.5), iv,
                   rng.integers(0, 5000, e.size).astype(float), T0, solve_missing_iv=False)
    return ch, [c.key for c in ch.contracts()]


def per_quote_us(ch: ChainState, keys: list, n: int = 20_000, seed: int = 2) -> float:
    """Median over 5 rounds of the mean µs per on_quote (random contracts, fresh IVs)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(keys), n)
    ivs = rng.uniform(0.1, 0.5, n)
    rounds = []
    ts = T0 + 1
    for _ in range(5):
        t = time.perf_counter()
        for j in range(n):
            key = keys[idx[j]]
            ch.on_quote(key[0], key[1], key[2], 10.0, 10.5, ts, float(ivs[j]))
        rounds.append((time.perf_counter() - t) / n * 1e6)
        ts += 1
    return float(np.median(rounds))


def main() -> None:
    out: dict = {}
    for n in (500, 20_000):
        ch, keys = build(n)
        out[f"contracts_{n}"] = len(keys)
        out[f"quote_update_us_{n}"] = round(per_quote_us(ch, keys), 2)
        # spot tick without reprice (O(1)) + live read
        m = 50_000
        t = time.perf_counter()
        for j in range(m):
            ch.on_spot(SPOT * (1 + 1e-4 * (j % 10)), T0 + 1)
        out[f"spot_tick_us_{n}"] = round((time.perf_counter() - t) / m * 1e6, 3)
        t = time.perf_counter()
        for j in range(m // 10):
            ch.live_totals(SPOT * (1 + 1e-4 * (j % 10)))
        out[f"live_totals_us_{n}"] = round((time.perf_counter() - t) / (m // 10) * 1e6, 2)
        # reads
        t = time.perf_counter()
        for _ in range(1000):
            ch.on_quote(*keys[0], 10.0, 10.5, T0 + 10, 0.2)
            ch.gamma_flip()
            ch.call_wall()
        out[f"quote_plus_flip_wall_us_{n}"] = round((time.perf_counter() - t) / 1000 * 1e6, 2)
        # re-evaluation on a threshold crossing: spot only (O(N)) and spot + clock (O(N·grid))
        t = time.perf_counter()
        ch.reprice(SPOT * 1.003, T0 + 1)
        out[f"reprice_spot_ms_{n}"] = round((time.perf_counter() - t) * 1e3, 2)
        t = time.perf_counter()
        ch.reprice(SPOT * 1.003, T0 + 61 * 10**9)
        out[f"reprice_spot_and_clock_ms_{n}"] = round((time.perf_counter() - t) * 1e3, 2)
    out["quote_update_ratio_20000_vs_500"] = round(
        out["quote_update_us_20000"] / out["quote_update_us_500"], 3)
    # live-read error vs a full reprice, 20k chain, +0.2% move (below the 0.25% threshold)
    ch, _ = build(20_000)
    ch.on_spot(SPOT * 1.002, T0)
    live = ch.live_totals()
    ch.reprice()
    exact = ch.totals()
    gross = np.abs([[c.gex, c.dex, c.vanna, c.charm] for c in ch.contracts()]).sum(axis=0)
    names = ("gex", "dex", "vanna", "charm")
    out["live_error_vs_net_at_0.2pct"] = {
        n: round(abs(a - b) / abs(b), 6) for n, a, b in zip(names, live.as_tuple(),
                                                               exact.as_tuple())}
    out["live_error_vs_gross_at_0.2pct"] = {
        n: round(abs(a - b) / g, 6) for n, a, b, g in zip(names, live.as_tuple(),
                                                            exact.as_tuple(), gross)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
