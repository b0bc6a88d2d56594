"""Offline backtest: the live engine driven day by day over real daily history.

One code path: the backtest hands :meth:`streamer.engine.UnderlyingEngine.ingest` one batch of official
closes per trading day, exactly the entry point the worker uses, so the flow models, the rule dispatch and
the trigger construction (``TriggerEvent``, ``event_id``, the finite-number guard) are the worker's. Per
trading day, at the 16:00 New York close:

1. dealer figures, applied before the closes, from ONE option chain and ONE positioning model
   (``dealer_reval.dealer_signs``; ``Settings.dealer_positioning`` or ``positioning=``): GEX, vanna and
   charm exposures (``ingest(exposures=...)``) and the vanna and charm hedge flows by full revaluation per
   expiry under the day's VIX9D/VIX/VIX3M close-to-close move (``dealer_reval.reval_flows``;
   ``ingest(dealer_flows=...)``). The chain is one dated the previous session when the shared data has
   one (``dated_chain_paths``; ``dealer_basis`` 0), else a static snapshot (``default_proxy_paths``) with
   its strikes scaled by previous close / its spot (``dealer_basis`` 1, labelled PROXY in the summary).
   SqueezeMetrics' GEX is not mixed in: its positioning is theirs (VALIDATION.md (d2) compares).
2. the closes of the bond input (TLT or DGS10, ``engine.bond_symbol``), VIX9D and VIX3M when present,
   the leveraged funds' underlyings when loaded (``DailyHistory.underlyings``: NDX, SOXX, NVDA, ...),
   then SPX and VIX, as index closes (``kind`` 1), the rules evaluated at their end
   (``ingest(evaluate=True)``; live, closes alone evaluate nothing).

The whole history is run (estimators and rule states warm up) but events are kept only inside
``[start, end]``. Every catalogued signal (streamer/core/signals.py) is recorded per day.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core.dealer_reval import POSITIONINGS, dealer_signs, reval_flows
from streamer.core.flows import FlowBook, FlowConfig
from streamer.core.flows.dealer import BASIS_CHAIN, BASIS_PROXY
from streamer.core.rules import RuleSet
from streamer.engine import UnderlyingEngine, bond_symbol, index_table
from streamer.history import DailyHistory
from streamer.pipeline import Batch
from streamer.schemas import TriggerEvent
from streamer.settings import Settings

NY = ZoneInfo("America/New_York")

#: daily history columns fed as index closes besides SPX, VIX and the bond (DailyHistory.extra key -> symbol)
EXTRA_CLOSES = {"vix9d": "VIX9D", "vix3m": "VIX3M"}


def close_ts_ns(iso_date: str) -> int:
    """16:00 America/New_York on the date, UTC ns (the daily close's event time).

    >>> close_ts_ns("2024-11-06") == 1730926800 * 10**9
    True
    """
    d = datetime.fromisoformat(iso_date).replace(hour=16, tzinfo=NY)
    return int(d.timestamp()) * 10**9


@dataclass(slots=True)
class DealerChain:
    """One SPX option-chain snapshot for the dealer figures: per-contract engine IVs (``chain_report
    .contract_ivs``: the live ChainBook's mid IVs against each expiry's parity forward, the one IV path) and
    open interest. :meth:`figures` signs it with one positioning model for GEX, vanna and charm alike."""

    source: str
    date: str                   # New York date of the snapshot (the session whose close it shows)
    spot: float
    asof_ts_ns: int
    expiry_ts_ns: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    iv: np.ndarray
    open_interest: np.ndarray
    rate: float
    div_yield: float
    _expo: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def exposures(self, positioning: str) -> tuple[float, float, float]:
        """(GEX $/1%, vanna $/vol pt, charm $/day) at the snapshot's own spot (computed once per model)."""
        if positioning not in self._expo:
            from streamer.core import chain
            sign = dealer_signs(positioning, self.expiry_ts_ns, self.strike, self.is_call, self.spot,
                                self.asof_ts_ns)
            t = chain.exposures_batch(self.expiry_ts_ns, self.strike, self.is_call, self.iv, self.open_interest,
                                      self.spot, self.asof_ts_ns, self.rate, self.div_yield,
                                      dealer_sign=sign).total
            self._expo[positioning] = (t.gex_usd_per_pct, t.vanna_usd_per_vol_pt, t.charm_usd_per_day)
        return self._expo[positioning]

    def figures(self, positioning: str, spot: float, term_change_pts: tuple[float, float, float],
                horizon_days: float) -> tuple[tuple[float, float, float], tuple[float, float] | None]:
        """Exposures and (vanna $, charm $) hedge flows by full revaluation (``dealer_reval.reval_flows``)
        with the chain's strikes scaled by ``spot`` / its own spot (sticky moneyness: BSM deltas depend
        on S/K, so the $ figures scale with S and GEX with S²; times to expiry are the snapshot's).
        Flows None when no term-structure node moved (all NaN)."""
        r = spot / self.spot
        g, v, c = self.exposures(positioning)
        expo = (g * r * r, v * r, c * r)
        if not any(x == x for x in term_change_pts):
            return expo, None
        k = self.strike * r
        sign = dealer_signs(positioning, self.expiry_ts_ns, k, self.is_call, spot, self.asof_ts_ns)
        f = reval_flows(self.expiry_ts_ns, k, self.is_call, self.iv, self.open_interest, sign, spot,
                        self.asof_ts_ns, self.rate, self.div_yield, term_change_pts=term_change_pts,
                        horizon_days=horizon_days)
        return expo, (f.total("vanna_usd"), f.total("charm_usd"))


def load_chain(paths: Iterable[str | Path], rate: float = 0.045, div_yield: float = 0.013) -> DealerChain:
    """A :class:`DealerChain` from Cboe quotedata file(s) of one snapshot, valued when its prices are from
    (``cboe_csv.read_quotedata``: a file saved after the close at its close). A file whose prices are
    of another date than the one in its name is dated 16:15 New York on its name's date (the name says
    which session's chain it is, as in SOURCES.md)."""
    import re

    from streamer.chain_report import contract_ivs, load, parse_asof

    paths = [Path(p) for p in paths]
    m = re.search(r"(\d{4}-\d{2}-\d{2})", paths[0].name)
    snap = load(paths)
    day = datetime.fromtimestamp(snap.asof_ts_ns / 1e9, NY).date().isoformat()
    if m and m.group(1) != day:
        day = m.group(1)
        snap = load(paths, parse_asof(f"{day}T16:15"))
    iv, _ = contract_ivs(snap, rate, div_yield)
    return DealerChain(",".join(p.name for p in paths), day, float(snap.spot), int(snap.asof_ts_ns),
                       snap.expiry_ts_ns, snap.strike, snap.right == "C", iv, snap.open_interest, rate, div_yield)


def dated_chain_paths(data_dir: str | Path) -> dict[str, list[Path]]:
    """Full SPX chain snapshots in ``<data_dir>/option_chains`` by the date in their names (the files of
    one date combined). Near-the-money subsets (``nearATM``) are left out: their exposures would be a
    fraction of the dealers' book presented as the whole."""
    import re

    out: dict[str, list[Path]] = {}
    for p in sorted((Path(data_dir) / "option_chains").glob("spx_quotedata_*.csv")):
        m = re.match(r"spx_quotedata_(\d{4}-\d{2}-\d{2})_", p.name)
        if m and "nearATM" not in p.name:
            out.setdefault(m.group(1), []).append(p)
    return out


@dataclass(slots=True)
class BacktestResult:
    dates: list[str]
    series: dict[str, np.ndarray]       # every catalogued signal the engine emits, one value per day
    events: list[TriggerEvent]
    event_dates: list[str]
    start: str
    end: str
    book: FlowBook                      # the engine's flow models after the last day
    notes: list[str] = field(default_factory=list)
    engine: UnderlyingEngine | None = None
    withheld: list[tuple[str, str, str]] = field(default_factory=list)   # (date, rule, why) not published

    def window(self) -> slice:
        """Index range of [start, end] in ``dates``."""
        import bisect
        return slice(bisect.bisect_left(self.dates, self.start), bisect.bisect_right(self.dates, self.end))

    def counts_per_year(self) -> dict[str, Counter]:
        """rule -> Counter(year -> events)."""
        out: dict[str, Counter] = {}
        for ev, d in zip(self.events, self.event_dates):
            out.setdefault(ev.rule, Counter())[d[:4]] += 1
        return out


def run_backtest(hist: DailyHistory, *, config: FlowConfig | None = None, rules: RuleSet | None = None,
                 start: str | None = None, end: str | None = None, underlying: str = "SPX",
                 proxy: DealerChain | None = None, dated: Mapping[str, DealerChain] | None = None,
                 positioning: str | None = None, vix_seed: Iterable[float] = (),
                 progress: bool = False, settings: Settings | None = None) -> BacktestResult:
    """Drive an :class:`UnderlyingEngine` over ``hist`` one day (one ``ingest``) at a time; events kept for
    dates in [start, end].

    Dealer figures of day D (module doc): from ``dated[previous session]`` when there is one
    (``dealer_basis`` 0), else from ``proxy`` scaled to the previous close (``dealer_basis`` 1), signed by
    ``positioning`` (default ``settings.dealer_positioning``; any of ``dealer_reval.POSITIONINGS``); none
    without either."""
    cfg = config or FlowConfig.default()
    if cfg.risk_parity.bond_input != hist.bond_input:
        from dataclasses import replace
        cfg = replace(cfg, risk_parity=replace(cfg.risk_parity, bond_input=hist.bond_input))
    rules = rules if rules is not None else RuleSet.default()
    st = settings or Settings()
    positioning = positioning or st.dealer_positioning
    if positioning not in POSITIONINGS:
        raise ValueError(f"positioning must be one of {POSITIONINGS}, got {positioning!r}")
    dated = dict(dated or {})
    eng = UnderlyingEngine(underlying, st, rules, cfg)
    notes = []
    n_seed = eng.flows.seed_vix_history(list(vix_seed))   # warm-up of the rank window, before any close
    if n_seed:
        notes.append(f"VIX change-rank window pre-loaded with {n_seed} one-day changes before {hist.dates[0]}")
    start = start or hist.dates[0]
    end = end or hist.dates[-1]
    bond = bond_symbol(cfg)
    # (symbol, closes) in the order they are applied each day: the bond before SPX/VIX (the flow models
    # take the day's closes when SPX and VIX are both in)
    inputs = [(bond, hist.bond)] + [(sym, hist.extra[k]) for k, sym in EXTRA_CLOSES.items() if k in hist.extra] \
        + [(sym, v) for sym, v in sorted(getattr(hist, "underlyings", {}).items())] \
        + [(underlying, hist.spx), ("VIX", hist.vix)]
    columns = [(sym, np.asarray(v, dtype=float).tolist()) for sym, v in inputs]
    n = len(hist)
    series = {k: np.full(n, np.nan) for k in sorted(eng.catalogue(sym for sym, _ in inputs))}
    events: list[TriggerEvent] = []
    event_dates: list[str] = []
    withheld: list[tuple[str, str, str]] = []
    term = [np.asarray(hist.extra[k], dtype=float) if k in hist.extra else np.full(n, np.nan)
            for k in ("vix9d",)] + [np.asarray(hist.vix, dtype=float)] \
        + [np.asarray(hist.extra[k], dtype=float) if k in hist.extra else np.full(n, np.nan) for k in ("vix3m",)]
    horizon = cfg.dealer.charm_horizon_days
    used_dated: list[str] = []
    n_proxy = 0
    it: Iterable[int] = range(n)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=n, unit="day", desc="backtest", leave=False)
    for i in it:
        d = hist.dates[i]
        ts = close_ts_ns(d)
        expo = flows = None
        if i > 0:
            ch = dated.get(hist.dates[i - 1])
            basis = BASIS_CHAIN
            if ch is None:
                ch, basis = proxy, BASIS_PROXY
            if ch is not None:
                spot = ch.spot if basis == BASIS_CHAIN else float(hist.spx[i - 1])
                chg = (term[0][i] - term[0][i - 1], term[1][i] - term[1][i - 1], term[2][i] - term[2][i - 1])
                expo, vc = ch.figures(positioning, spot, chg, horizon)
                flows = None if vc is None else (vc[0], vc[1], basis)
                if start <= d <= end:
                    if basis == BASIS_CHAIN:
                        used_dated.append(f"{d} ({ch.source})")
                    else:
                        n_proxy += 1
        rows = [(sym, ts, col[i], d) for sym, col in columns if math.isfinite(col[i])]
        fx = eng.ingest(Batch(underlying, ts + 1, index=index_table(rows, underlying)), snapshot=False,
                        evaluate=True, exposures=expo, dealer_flows=flows)
        for k, x in eng.values().items():
            if x is not None:
                series[k][i] = x
        if start <= d <= end:
            events += fx.triggers
            event_dates += [d] * len(fx.triggers)
            withheld += [(d, r, why) for r, why in fx.withheld]
    if used_dated or n_proxy:
        notes.append(f"dealer gamma/vanna/charm from one positioning ({positioning!r}), vanna and charm by full "
                     f"revaluation under the VIX9D/VIX/VIX3M move: a chain dated the previous session on "
                     f"{len(used_dated)} day(s) [{'; '.join(used_dated) or 'none'}]; PROXY on {n_proxy} day(s): "
                     + (f"the static {proxy.source} chain (spot {proxy.spot:.2f}), strikes scaled by previous "
                        f"close / {proxy.spot:.2f}" if proxy is not None else "none"))
    return BacktestResult(hist.dates, series, events, event_dates, start, end, eng.flows, notes, eng, withheld)


# ----------------------------------------------------------------------------------- outputs


def summary(res: BacktestResult, top: int = 10) -> str:
    """Events per rule per year and the largest flow days, as text."""
    w = res.window()
    years = sorted({d[:4] for d in res.dates[w]})
    counts = res.counts_per_year()
    lines = [f"backtest {res.start} .. {res.end}: {w.stop - w.start} trading days, {len(res.events)} events"]
    lines += [f"  note: {n}" for n in res.notes]
    name_w = max([len(r) for r in counts] + [20])
    lines.append("events per rule per year:")
    lines.append("  " + "rule".ljust(name_w) + "".join(y.rjust(6) for y in years) + "total".rjust(7))
    for rule in sorted(counts):
        c = counts[rule]
        lines.append("  " + rule.ljust(name_w) + "".join(str(c.get(y, 0)).rjust(6) for y in years)
                     + str(sum(c.values())).rjust(7))
    tot = res.series["flow_systematic_today_usd"][w]
    dates = res.dates[w]
    order = np.argsort(-np.abs(np.nan_to_num(tot)))[:top]
    lines.append("largest |systematic flow| days ($bn; vol-control + risk parity + CTA + leveraged ETFs + dealers):")
    cols = ("flow_systematic_today_usd", "flow_vol_control_today_usd", "flow_risk_parity_today_usd",
            "flow_cta_today_usd", "flow_leveraged_etf_close_usd", "flow_dealer_total_usd")
    lines.append("  date        spx_chg   total   volctl   rpar     cta   levETF  dealer  (dealer basis)")
    basis = res.series.get("dealer_basis")
    for j in order:
        i = w.start + int(j)
        vals = "".join(f"{res.series[c][i] / 1e9:8.1f}" for c in cols)
        b = basis[i] if basis is not None else math.nan
        lab = "dated chain" if b == BASIS_CHAIN else "PROXY" if b == BASIS_PROXY else "-"
        lines.append(f"  {dates[j]}  {res.series['spx_change_ratio'][i]:+7.2%}{vals}  {lab}")
    return "\n".join(lines)


def write_events(res: BacktestResult, path: str | Path) -> int:
    """Trigger events as JSON lines (same encoding as the live topic: schemas.encode)."""
    from streamer.schemas import encode

    with open(path, "wb") as fh:
        for ev in res.events:
            fh.write(encode(ev) + b"\n")
    return len(res.events)


def plot(res: BacktestResult, path: str | Path, title: str = "") -> None:
    """PNG report: SPX with triggers, VIX, modelled exposures, daily flows per fund type."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    w = res.window()
    x = np.array([np.datetime64(d) for d in res.dates[w]])
    S = {k: v[w] for k, v in res.series.items()}
    fig, ax = plt.subplots(4, 1, figsize=(14, 13), sharex=True,
                           gridspec_kw={"height_ratios": [3, 1.6, 1.8, 2.4]})
    ax[0].plot(x, S["spx_last"], color="black", lw=1.0, label="S&P 500 close")
    rules = sorted({e.rule for e in res.events})
    cmap = plt.get_cmap("tab10")
    xi = {d: k for k, d in enumerate(res.dates[w])}
    for k, r in enumerate(rules):
        idx = [xi[d] for e, d in zip(res.events, res.event_dates) if e.rule == r and d in xi]
        ax[0].scatter(x[idx], S["spx_last"][idx], marker="^", s=60, color=cmap(k % 10), zorder=3,
                      edgecolor="black", linewidth=0.5, label=f"{r} ({len(idx)})")
    ax[0].set_ylabel("SPX (log scale)")
    ax[0].set_yscale("log")
    ax[0].legend(loc="upper left", fontsize=8, ncol=2)
    ax[0].set_title(title or f"streamer backtest {res.start} .. {res.end}: systematic flows and triggers")
    ax[1].plot(x, S["vix_last"], color="tab:purple", lw=0.9, label="VIX")
    ax[1].set_ylabel("VIX")
    ax[1].legend(loc="upper left", fontsize=8)
    for k, lab in (("vol_control_exposure_ratio", "vol control exposure"),
                   ("risk_parity_equity_alloc_ratio", "risk parity equity allocation"),
                   ("cta_position_ratio", "CTA position")):
        ax[2].plot(x, S[k], lw=1.0, label=lab)
    ax[2].axhline(0, color="grey", lw=0.5)
    ax[2].set_ylabel("fraction of AUM")
    ax[2].legend(loc="lower left", fontsize=8, ncol=3)
    for k, lab in (("flow_vol_control_today_usd", "vol control"), ("flow_risk_parity_today_usd", "risk parity"),
                   ("flow_cta_today_usd", "CTA"), ("flow_leveraged_etf_close_usd", "leveraged ETFs (close)"),
                   ("flow_dealer_total_usd", "dealer hedging"
                    + (" (proxy chain)" if np.nanmax(np.r_[S.get("dealer_basis", np.array([])), 0.0]) > 0 else ""))):
        v = S[k] / 1e9
        ax[3].plot(x, _rolling_sum(v, 21), lw=0.8, alpha=0.85, label=lab)
    ax[3].axhline(0, color="grey", lw=0.5)
    ax[3].set_ylabel("$bn, 21-day rolling sum")
    ax[3].legend(loc="lower left", fontsize=8, ncol=5)
    lim = np.nanpercentile(np.abs(np.concatenate([_rolling_sum(S[k] / 1e9, 21) for k in (
        "flow_vol_control_today_usd", "flow_risk_parity_today_usd", "flow_cta_today_usd",
        "flow_leveraged_etf_close_usd", "flow_dealer_total_usd")])), 99.5)
    if np.isfinite(lim) and lim > 0:
        ax[3].set_ylim(-1.3 * lim, 1.3 * lim)
    for a in ax:
        a.grid(alpha=0.3)
    loc = mdates.AutoDateLocator()
    ax[3].xaxis.set_major_locator(loc)
    ax[3].xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rolling_sum(v: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(v), np.nan)
    z = np.nan_to_num(v)
    c = np.cumsum(np.r_[0.0, z])
    if len(v) >= n:
        out[n - 1:] = c[n:] - c[:-n]
    return out


def default_proxy_paths(data_dir: str | Path) -> list[Path]:
    """The Jan+Feb 2025 SPX chain snapshot (full strikes, near-term expiries), if present."""
    d = Path(data_dir) / "option_chains"
    ps = [d / "spx_quotedata_2025-01-06_close_janexp.csv", d / "spx_quotedata_2025-01-06_close_febexp.csv"]
    return [p for p in ps if p.exists()]


def vix_seed_closes(vix_path: str | Path, before: str, days: int) -> list[float]:
    """The last ``days`` VIX closes dated before ``before`` (to pre-load the rank window)."""
    from streamer.history import read_daily

    s = read_daily(vix_path)
    vals = [v for d, v in zip(s.dates, s.values.tolist()) if d < before]
    return vals[-(days + 1):]


@dataclass(slots=True, frozen=True)
class RuleStats:
    """Per-rule statistics over a backtest window (VALIDATION.md (e), issue 9 item 7).

    ``clustered_share``: fraction of the rule's events that come within ``cluster_sessions``
    sessions of its previous event. ``fwd_mean[k]``: mean SPX close-to-close return over the k
    sessions after the event's close (events with k sessions of history left); ``fwd_base[k]``: the
    same over every session of the window (the unconditional average). ``fwd_up[k]``: share of
    events followed by a positive k-session return.
    """

    rule: str
    events: int
    per_year: float
    clustered_share: float
    fwd_mean: dict[int, float]
    fwd_up: dict[int, float]
    fwd_n: dict[int, int]
    fwd_base: dict[int, float]


def rule_statistics(res: BacktestResult, horizons: tuple[int, ...] = (1, 5, 21),
                    cluster_sessions: int = 10) -> list[RuleStats]:
    """Events a year, clustering and forward SPX returns per rule over ``res.window()``."""
    w = res.window()
    spx = np.asarray(res.series["spx_last"], dtype=float)
    n_days = w.stop - w.start
    years = n_days / 252.0
    pos = {d: i for i, d in enumerate(res.dates)}
    base = {}
    for k in horizons:
        idx = np.arange(w.start, min(w.stop, len(spx) - k))
        base[k] = float(np.mean(spx[idx + k] / spx[idx] - 1.0)) if len(idx) else math.nan
    by_rule: dict[str, list[int]] = {}
    for ev, d in zip(res.events, res.event_dates):
        by_rule.setdefault(ev.rule, []).append(pos[d])
    out = []
    for rule in sorted(by_rule):
        ii = sorted(by_rule[rule])
        clustered = sum(1 for a, b in zip(ii, ii[1:]) if b - a <= cluster_sessions)
        mean, up, cnt = {}, {}, {}
        for k in horizons:
            r = np.array([spx[i + k] / spx[i] - 1.0 for i in ii if i + k < len(spx)])
            cnt[k] = len(r)
            mean[k] = float(r.mean()) if len(r) else math.nan
            up[k] = float((r > 0).mean()) if len(r) else math.nan
        out.append(RuleStats(rule, len(ii), len(ii) / years if years > 0 else math.nan,
                             clustered / len(ii), mean, up, cnt, base))
    return out


def events_table(res: BacktestResult) -> list[dict[str, Any]]:
    """One dict per event (date, rule, severity, notional $bn, reason) for reports."""
    return [{"date": d, "rule": e.rule, "severity": e.severity,
             "notional_bn": None if e.estimated_notional_usd is None else e.estimated_notional_usd / 1e9,
             "reason": e.reason} for e, d in zip(res.events, res.event_dates)]
