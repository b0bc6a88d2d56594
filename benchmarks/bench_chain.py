"""Benchmark streamer.core.chain.ChainBook: per-quote cost of batch updates at 500 vs 20,000 contracts,
snapshot-cadence reads (profile/flip, walls, VIX), reprice, expiry, live-read error.

Standalone: ``.venv/bin/python benchmarks/bench_chain.py`` prints one JSON object.

Per-quote cost = ``apply_quotes`` wall time / rows, everything included (conflation, IV solve
against the parity forward, greeks, revert-then-add of every aggregate). Two batch shapes:
``random1000``: 1,000 rows drawn with replacement (at 500 contracts over half the rows are
conflated away, which makes the small chain cheaper per row); ``distinct400``: 400 distinct
contracts per batch, the same work per batch at both sizes: the like-for-like ratio (goal ≤ 1.25).
The two sizes are timed in interleaved rounds (the machine is shared; load drifts).
VIX costs nothing per quote (the book stores the quote); ``vix_and_vix9d_ms`` is its per-read cost.
``small_batches_20000``: ms per batch of 10 / 50 / 200 distinct contracts (one 10 ms segment's quotes),
then per 200-quote batch as the engine runs it (VIX terms and parity mids cached, so the batch also
writes into them): the apply, the VIX / ATM IV reads, and the per-evaluation chain reads (gamma
flip/profile, live totals, walls, next roll-off); ``--small-batches`` runs only that (~10 s).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from streamer.core import bs
from streamer.core.chain import NS_PER_DAY, NS_PER_YEAR, ChainBook, ChainConfig
from streamer.core.vix import VIX, VIX9D

T0 = 1_704_466_800 * 10**9  # 2024-01-05 10:00 ET
SPOT = 4700.0
CFG = dict(rate=0.05, div_yield=0.013)


def chain(n_contracts: int) -> tuple[np.ndarray, ...]:
    """About n contracts: expiries (1 day–2 years) × strikes (±40%) × {C, P}, BSM prices on a smile."""
    n_exp = 5 if n_contracts <= 1000 else 50
    n_k = max(2, n_contracts // (2 * n_exp))
    exps = [T0 + int(d * NS_PER_DAY) for d in np.geomspace(1, 700, n_exp)]
    ks = np.linspace(SPOT * 0.6, SPOT * 1.4, n_k).round(0)
    e, k, c = (np.array(a).ravel() for a in np.meshgrid(exps, ks, [True, False], indexing="ij"))
    t = (e - T0) / NS_PER_YEAR
    iv = 0.12 + 0.4 * np.abs(k / SPOT - 1.0)
    p = bs.price(SPOT, k, t, CFG["rate"], CFG["div_yield"], iv, c)
    return e.astype(np.int64), k, c.astype(bool), p


def build(n: int) -> tuple[ChainBook, tuple]:
    e, k, c, p = ch = chain(n)
    book = ChainBook(SPOT, T0, ChainConfig(**CFG, auto_reprice=False))
    rng = np.random.default_rng(1)
    book.apply_open_interest(e, k, c, rng.integers(0, 5000, e.size).astype(float))
    book.apply_quotes(T0, e, k, c, np.maximum(p - 0.05, 0.0), p + 0.05)
    return book, ch


def batches(ch: tuple, size: int, distinct: bool, count: int, seed: int) -> list[tuple]:
    e, k, c, p = ch
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        idx = rng.choice(e.size, size, replace=False) if distinct else rng.integers(0, e.size, size)
        pp = p[idx] * (1.0 + rng.uniform(-0.01, 0.01, size))
        out.append((e[idx], k[idx], c[idx], np.maximum(pp - 0.05, 0.0), pp + 0.05))
    return out


def interleaved_us(books: dict, shape: tuple[int, bool], rounds: int = 9) -> dict:
    """µs per row (and per applied contract) through ``apply_quotes`` for each book, the books'
    rounds interleaved so that load from other processes hits both sizes alike; medians over
    rounds after one warm-up round, and the median of the per-round 20,000/500 ratios."""
    size, distinct = shape
    sets = {n: batches(ch, size, distinct, 20, 2) for n, (_, ch) in books.items()}
    ts = {n: int(b.to_state()["slot.qts"].max()) + 1 for n, (b, _) in books.items()}
    per_row: dict = {n: [] for n in books}
    per_applied: dict = {n: [] for n in books}
    rows = 20 * size
    for r in range(rounds + 1):
        for n, (book, _) in books.items():
            applied = 0
            t = time.perf_counter()
            for b in sets[n]:
                applied += book.apply_quotes(ts[n], *b)
                ts[n] += 1
            dt = time.perf_counter() - t
            if r:
                per_row[n].append(dt / rows * 1e6)
                per_applied[n].append(dt / applied * 1e6)
    ratio = np.median(np.array(per_row[20_000]) / np.array(per_row[500]))
    return {"us_per_row": {n: round(float(np.median(v)), 3) for n, v in per_row.items()},
            "us_per_applied": {n: round(float(np.median(v)), 3) for n, v in per_applied.items()},
            "ratio_20000_vs_500": round(float(ratio), 3)}


def ms(f, repeat: int = 5) -> float:
    """Median ms of f() (caches invalidated by the caller where needed)."""
    res = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        res.append((time.perf_counter() - t) * 1e3)
    return round(float(np.median(res)), 3)


def small_batches_ms(book: ChainBook, ch: tuple, count: int = 200) -> dict:
    """ms per ``apply_quotes`` batch of 10 / 50 / 200 distinct contracts (the quotes of one 10 ms
    segment at 1k / 5k / 20k quotes/s), and VIX + VIX9D and ATM IV read after each 200-quote
    batch (as the engine does per segment: the batch's expiries have new quotes). Medians."""
    out: dict = {}
    ts = int(book.to_state()["slot.qts"].max()) + 1
    for size in (10, 50, 200):
        res = []
        for b in batches(ch, size, True, count, 3):
            t = time.perf_counter()
            book.apply_quotes(ts, *b)
            res.append((time.perf_counter() - t) * 1e3)
            ts += 1
        out[f"apply_quotes_ms_batch{size}"] = round(float(np.median(res)), 3)
    vix, atm, app, flip, reads = [], [], [], [], []
    book.vix(T0, VIX), book.vix(T0, VIX9D), book.atm_iv(T0)
    for b in batches(ch, 200, True, count, 5):
        t = time.perf_counter()
        book.apply_quotes(ts, *b)
        t0 = time.perf_counter()
        ts += 1
        book.vix(T0, VIX), book.vix(T0, VIX9D)
        t1 = time.perf_counter()
        book.atm_iv(T0)
        t2 = time.perf_counter()
        book.gamma_flip()
        t3 = time.perf_counter()
        book.live_totals(), book.walls(), book.next_rolloff(T0)
        t4 = time.perf_counter()
        app.append((t0 - t) * 1e3)
        vix.append((t1 - t0) * 1e3)
        atm.append((t2 - t1) * 1e3)
        flip.append((t3 - t2) * 1e3)
        reads.append((t4 - t3) * 1e3)
    q = {"p50": 50, "p99": 99}
    out["apply_quotes_ms_batch200_engine"] = {k: round(float(np.percentile(app, v)), 3) for k, v in q.items()}
    out["vix_and_vix9d_ms_after_batch200"] = round(float(np.median(vix)), 3)
    out["atm_iv_ms_after_batch200"] = round(float(np.median(atm)), 3)
    out["gamma_flip_ms_after_batch200"] = {k: round(float(np.percentile(flip, v)), 3) for k, v in q.items()}
    out["live_totals_walls_rolloff_ms_after_batch200"] = round(float(np.median(reads)), 3)
    seg = np.array(app) + np.array(vix) + np.array(atm) + np.array(flip) + np.array(reads)
    out["segment_ms_batch200_all_of_the_above"] = {k: round(float(np.percentile(seg, v)), 3)
                                                   for k, v in q.items()}
    out["reprice_ms"] = ms(lambda: book.reprice(SPOT * 1.001, T0 + 1), 3)
    return out


def main() -> None:
    out: dict = {}
    if "--small-batches" in sys.argv:   # only the per-batch fixed costs on the 20,000 chain
        print(json.dumps(small_batches_ms(*build(20_000)), indent=1))
        return
    for n in (500, 20_000):
        book, ch = build(n)
        out[f"contracts_{n}"] = len(book)
        e, k, c, _ = ch
        rng = np.random.default_rng(4)
        idx = rng.choice(e.size, 400, replace=False)
        oi = rng.integers(0, 5000, 400).astype(float)
        out[f"oi_us_distinct400_{n}"] = round(
            ms(lambda: book.apply_open_interest(e[idx], k[idx], c[idx], oi)) * 1e3 / 400, 3)

        def bump() -> None:         # one 1-row batch: invalidates the profile cache
            book.apply_open_interest(e[:1], k[:1], c[:1], oi[:1])
        out[f"profile_and_flip_ms_{n}"] = ms(lambda: (bump(), book.gamma_flip()))
        out[f"walls_ms_{n}"] = ms(book.walls)
        out[f"vix_and_vix9d_ms_{n}"] = ms(lambda: (book.vix(T0, VIX), book.vix(T0, VIX9D)))
        out[f"atm_iv_ms_{n}"] = ms(lambda: book.atm_iv(T0))
        out[f"exposures_report_ms_{n}"] = ms(lambda: (bump(), book.exposures()))
        out[f"reprice_ms_{n}"] = ms(lambda: book.reprice(SPOT * 1.003, T0 + 1))
        out[f"spot_tick_us_{n}"] = round(ms(lambda: [book.on_spot(SPOT * 1.003, T0 + 1)
                                                     for _ in range(10_000)]) * 1e3 / 10_000, 3)
        out[f"to_state_ms_{n}"] = ms(book.to_state)
        st = book.to_state()
        out[f"from_state_ms_{n}"] = ms(lambda: ChainBook.from_state(st))
        cut = int(np.unique(e)[0])
        copies = [ChainBook.from_state(st) for _ in range(3)]
        out[f"expire_one_expiry_ms_{n}"] = ms(lambda: copies.pop().expire(cut), 3)
    books = {n: build(n) for n in (500, 20_000)}
    out["small_batches_20000"] = small_batches_ms(*books[20_000])
    out["quotes_random1000"] = interleaved_us(books, (1000, False))
    out["quotes_distinct400"] = interleaved_us(books, (400, True))
    # live-read error vs a full reprice, 20k chain, +0.2% move (below the 0.25% threshold)
    book, _ = build(20_000)
    book.on_spot(SPOT * 1.002, T0)
    live = book.live_totals()
    book.reprice()
    exact = book.totals()
    ref = book.batch()
    gross = (np.abs(ref.strike_gex).sum(), np.abs(ref.strike_dex).sum(),
             np.abs(ref.strike_vanna).sum(), np.abs(ref.strike_charm).sum())
    names = ("gex", "dex", "vanna", "charm")
    out["live_error_vs_net_at_0.2pct"] = {
        m: round(abs(a - b) / abs(b), 6) for m, a, b in zip(names, live.as_tuple(), exact.as_tuple())}
    out["live_error_vs_gross_by_strike_at_0.2pct"] = {
        m: float(f"{abs(a - b) / g:.2e}") for m, a, b, g in zip(names, live.as_tuple(),
                                                                exact.as_tuple(), gross)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
