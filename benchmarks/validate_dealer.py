"""Reproduce the dealer-positioning part of section (d) of VALIDATION.md: GEX of every shared SPX chain
under each positioning model beside SqueezeMetrics' published GEX, and the vanna / charm / gamma hedge
flows of the 2024-11-06 move (and the backtest's other two large vanna days) by full revaluation per
expiry (streamer/core/dealer_reval.py), beside the old "vanna exposure × ΔVIX" figure and Morgan
Stanley's ~$5bn.

    .venv/bin/python benchmarks/validate_dealer.py [--data-dir /work/shared/data] [--out VALIDATION.md | -]

Replaces the text between <!-- validate_dealer:begin --> and <!-- validate_dealer:end -->.

IVs are the engine's (``streamer.chain_report.contract_ivs``: the live ChainBook through
``run_offline``, mid IVs against each expiry's put–call-parity forward, the one IV path); GEX is
``core.chain.exposures_batch`` weighted by ``core.dealer_reval.dealer_signs`` — the same sign array
the revaluation uses. Nothing is fitted.
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from streamer.chain_report import contract_ivs, load, parse_asof, report
from streamer.core.chain import NS_PER_DAY, exposures_batch
from streamer.core.dealer_reval import POSITIONINGS, dealer_signs, iv_shift_by_days, reval_flows
from streamer.history import DEFAULT_DATA_DIR, read_daily
from validate_vix import write_section  # the one VALIDATION.md section writer (same folder)

Q = 0.013   # S&P 500 dividend yield (Settings.div_yield; SOURCES.md gamma check)
# (label, SqueezeMetrics date, files, rate = ~1-month T-bill that day as section (d), as-of, spot source)
CHAINS = [
    ("2023-09-14 full", "2023-09-14", ["spx_quotedata_2023-09-14_close.csv"], 0.0555, None, "last"),
    ("2024-01-05 full", "2024-01-05", ["spx_quotedata_2024-01-05_close.csv"], 0.055, "2024-01-05T16:15", "last"),
    ("2024-11-08 ATM subset", "2024-11-08", ["spx_quotedata_2024-11-08_close_nearATM_novexp.csv"], 0.046, None,
     "parity"),
    ("2025-01-06 Jan+Feb", "2025-01-06", ["spx_quotedata_2025-01-06_close_janexp.csv",
                                          "spx_quotedata_2025-01-06_close_febexp.csv"], 0.043, None, "last"),
]
# the backtest's three large dealer-vanna days (issue 9): (day before, day)
MOVES = [("2024-11-05", "2024-11-06"), ("2020-03-13", "2020-03-16"), ("2025-04-08", "2025-04-09")]
MS_HEDGE_REBALANCING_BN = 5.0   # Morgan Stanley, 2024-11-06: ~$5bn of dealer hedge rebalancing
# the backtest's dealer vanna those days: before (issue 9: one static chain x the VIX change, first order) and
# now (VALIDATION (e): the proxy book revalued under the VIX9D/VIX/VIX3M move, naive positioning)
OLD_BACKTEST_VANNA_BN = {"2024-11-06": 49.0, "2020-03-16": -136.0, "2025-04-09": 188.0}
BACKTEST_VANNA_BN = {"2024-11-06": 65.5, "2020-03-16": -126.0, "2025-04-09": 94.5}


def _series(data: Path) -> dict[str, dict[str, float]]:
    files = {"SPX": "spx_daily_ohlc_2015-01-02_2026-02-27.csv", "VIX": "vix_daily_ohlc_1990-2026.csv",
             "VIX9D": "cboe_VIX9D_History.csv", "VIX3M": "cboe_VIX3M_History.csv"}
    out = {}
    for k, f in files.items():
        s = read_daily(data / f)
        out[k] = dict(zip(s.dates, s.values.tolist()))
    with open(data / "squeezemetrics_dix_gex_2011-2026.csv", newline="") as fh:
        out["SM"] = {r["date"]: float(r["gex"]) for r in csv.DictReader(fh)}
    return out


def _chain(data: Path, files: list[str], rate: float, asof: str | None, spot_source: str) -> dict:
    snap = load([data / "option_chains" / f for f in files], parse_asof(asof) if asof else None)
    if spot_source == "parity":
        from dataclasses import replace
        snap = replace(snap, spot=report(snap, rate, Q, spot_source="parity")["spot"])
    iv, _ = contract_ivs(snap, rate, Q)
    return dict(exp=snap.expiry_ts_ns, k=snap.strike, call=snap.right == "C", iv=iv,
                oi=snap.open_interest, spot=float(snap.spot), now=int(snap.asof_ts_ns), rate=rate)


def _signs(c: dict, model: str) -> np.ndarray:
    return dealer_signs(model, c["exp"], c["k"], c["call"], c["spot"], c["now"])


def _gex(c: dict, model: str):
    return exposures_batch(c["exp"], c["k"], c["call"], c["iv"], c["oi"], c["spot"], c["now"], c["rate"], Q,
                           dealer_sign=_signs(c, model)).total


def _move(s: dict, before: str, day: str) -> tuple[tuple[float, float, float], float]:
    chg = tuple(s[k][day] - s[k][before] for k in ("VIX9D", "VIX", "VIX3M"))
    return chg, s["SPX"][day] / s["SPX"][before] - 1.0


def _flows(c: dict, model: str, chg, ret: float, **kw):
    return reval_flows(c["exp"], c["k"], c["call"], c["iv"], c["oi"], _signs(c, model), c["spot"], c["now"],
                       c["rate"], Q, term_change_pts=chg, horizon_days=1.0, new_spot=c["spot"] * (1.0 + ret), **kw)


def build(data: Path) -> str:
    s = _series(data)
    chains = {lab: _chain(data, files, rate, asof, src) for lab, _, files, rate, asof, src in CHAINS}
    bn = lambda x: f"{x / 1e9:+.2f}"
    L: list[str] = []
    w = L.append
    w("Generated by `benchmarks/validate_dealer.py` (engine mid IVs via `chain_report.contract_ivs`, q = 1.3%, "
      "each chain's 1-month T-bill rate as in the table above; `core.dealer_reval`). $bn throughout.")
    w("")
    w("#### GEX by positioning model beside SqueezeMetrics ($bn of dealer delta per 1% move)")
    w("")
    w("| chain (as-of, spot) | " + " | ".join(f"`{m}`" for m in POSITIONINGS) + " | SqueezeMetrics (date) | same sign |")
    w("|---|" + "---:|" * len(POSITIONINGS) + "---:|---|")
    for lab, day, *_ in CHAINS:
        c = chains[lab]
        g = [_gex(c, m).gex_usd_per_pct for m in POSITIONINGS]
        sm = s["SM"][day]
        agree = ", ".join(f"`{m}`" for m, x in zip(POSITIONINGS, g) if np.sign(x) == np.sign(sm)) or "none"
        w(f"| {lab} ({c['spot']:.2f}) | " + " | ".join(bn(x) for x in g) + f" | {bn(sm)} ({day}) | {agree} |")
    w("")
    for before, day in MOVES:
        chg, ret = _move(s, before, day)
        w(f"#### The {day} move on each chain: SPX {ret:+.2%}, VIX9D {s['VIX9D'][before]:.2f}→{s['VIX9D'][day]:.2f}, "
          f"VIX {s['VIX'][before]:.2f}→{s['VIX'][day]:.2f}, VIX3M {s['VIX3M'][before]:.2f}→{s['VIX3M'][day]:.2f}, one day")
        w("")
        w("Hedge flows, + = dealers buy. `old` = −(vanna exposure $/vol pt) × ΔVIX, the backtest's parallel "
          "first-order figure; `1st` = first-order vanna with the per-expiry term-structure Δσ; `vanna` = full "
          "revaluation; `charm` = one day of decay of contracts alive tomorrow; `settle` = hedges unwound by "
          "contracts settling within the day (cash-settled); `gamma` = the spot move alone (sticky strike); `joint` = "
          "all at once; `vanna net` / `joint net` = the same with each expiry's fixed-strike IV move net of the "
          "at-the-money roll along its own smile (`net_of_smile_roll`) "
          f"(backtest {day}: {BACKTEST_VANNA_BN[day]:+.1f} $bn of dealer vanna by revaluation of its proxy book, "
          f"{OLD_BACKTEST_VANNA_BN[day]:+.0f} before issue 9"
          + (f"; Morgan Stanley ~{MS_HEDGE_REBALANCING_BN:.0f} $bn of hedge rebalancing" if day == "2024-11-06" else "")
          + ").")
        w("")
        w("| chain | positioning | old | 1st | vanna | vanna net | charm | settle | gamma | joint | joint net |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for lab, *_ in CHAINS:
            for m in POSITIONINGS:
                f = _flows(chains[lab], m, chg, ret)
                fn = _flows(chains[lab], m, chg, ret, net_of_smile_roll=True)
                w(f"| {lab} | `{m}` | {bn(f.vanna_parallel_vix_usd)} | {bn(f.total('vanna_first_order_usd'))} | "
                  f"{bn(f.total('vanna_usd'))} | {bn(fn.total('vanna_usd'))} | {bn(f.total('charm_usd'))} | "
                  f"{bn(f.total('settle_usd'))} | {bn(f.total('gamma_usd'))} | {bn(f.total('joint_usd'))} | "
                  f"{bn(fn.total('joint_usd'))} |")
        w("")
    # where the vanna sits: by days to expiry, 2024-11-06 move, the full 2024-01-05 chain
    chg, ret = _move(s, *MOVES[0])
    c = chains["2024-01-05 full"]
    w("#### Where the 2024-11-06 vanna sits: full 2024-01-05 chain by days to expiry (`naive` / `otm_only`)")
    w("")
    w("| days to expiry | Δσ (vol pts) | OI (k contracts) | old `naive` | vanna `naive` | old `otm_only` | vanna `otm_only` |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    days = (c["exp"] - c["now"]) / NS_PER_DAY
    fl = {m: _flows(c, m, chg, ret) for m in ("naive", "otm_only")}
    # the old figure per expiry: parallel ΔVIX first order = first order with d_iv = ΔVIX everywhere
    old = {m: reval_flows(c["exp"], c["k"], c["call"], c["iv"], c["oi"], _signs(c, m), c["spot"], c["now"],
                          c["rate"], Q, d_iv=np.full(c["exp"].shape, chg[1] / 100.0)) for m in ("naive", "otm_only")}
    ed = (fl["naive"].expiries - c["now"]) / NS_PER_DAY
    for lo, hi in ((0, 9), (9, 30), (30, 93), (93, 365), (365, 4000)):
        sel = (ed > lo) & (ed <= hi)
        if not sel.any():
            continue
        dv = iv_shift_by_days(np.array([(lo + min(hi, 730)) / 2.0]), *chg)[0] * 100
        oi = np.nansum(c["oi"][(days > lo) & (days <= hi)]) / 1e3
        w(f"| {lo}–{hi} | {dv:+.2f} (mid) | {oi:,.0f} | {bn(old['naive'].vanna_first_order_usd[sel].sum())} | "
          f"{bn(fl['naive'].vanna_usd[sel].sum())} | {bn(old['otm_only'].vanna_first_order_usd[sel].sum())} | "
          f"{bn(fl['otm_only'].vanna_usd[sel].sum())} |")
    w("")
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    ap.add_argument("--out", default="VALIDATION.md")
    a = ap.parse_args()
    write_section(a.out, "validate_dealer", build(Path(a.data_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
