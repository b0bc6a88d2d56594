"""Every signal the engine emits, declared once: name, unit, description, Prometheus gauge.

The engine's ``signals()`` (streamer/engine.py), the worker's gauges (``streamer.metrics.Metrics.set_signals``),
the backtest's columns (streamer/backtest.py) and rule validation (``RuleSet.from_toml(known_signals=...)``)
all read this table; tests/unit/test_signals.py checks that what the engine emits on the election
scenario is exactly this catalogue, expanded.

Some names are families: a ``{placeholder}`` stands for values that come from configuration or from
the input streams (:data:`PLACEHOLDERS`), e.g. ``{vol_index}_last`` -> ``vix_last``, ``vix9d_last``.
:func:`expand` turns the table into concrete names for given placeholder values; names are the
values lower-cased, gauge labels keep the values as given (``index="VIX9D"``).

Pure stdlib: no engine, flows or Prometheus import (core purity).
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

#: placeholder -> what supplies its values
PLACEHOLDERS: dict[str, str] = {
    "index": "index series that are not volatility indices: the underlying (and any other index on its partition)",
    "vol_index": "volatility-index series (Settings.vol_indices: VIX, VIX9D, VIX3M)",
    "family": "vol-control estimator families (flows.toml [vol_control.family] names)",
    "horizon": "vol-control projection horizons (flows.toml vol_control.horizons_days labels)",
    "scenario": "vol-control path scenarios (flows.toml vol_control.scenarios names)",
    "component": "CTA signal components: 'ma' and each momentum label (flows.toml cta.momentum_days)",
    "group": "leveraged-ETF benchmark groups (flows.toml leveraged_etf fund indices, lower case)",
}


@dataclass(frozen=True, slots=True)
class Gauge:
    """A Prometheus gauge a signal is published as (per underlying; ``labels`` beyond it, may hold
    placeholders)."""

    metric: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal (or a family of them, when ``name`` holds a ``{placeholder}``)."""

    name: str
    unit: str
    description: str
    source: str                      # who computes it: series | chain | flows | engine
    gauge: Gauge | None = None

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.name) if f)


@dataclass(frozen=True, slots=True)
class Concrete:
    """One expanded signal: its concrete name, its declaration and the gauge labels with values."""

    name: str
    signal: Signal
    gauge_labels: dict[str, str] = field(default_factory=dict)


_USD = "USD"
_RATIO = "decimal fraction (0.01 = 1%)"
_VOL = "annualized decimal vol (0.15 = 15%)"
_PTS = "index points"
_FLOW = "USD, positive = buying"


def _g(metric: str, **labels: str) -> Gauge:
    return Gauge(metric, tuple(labels.items()))


SIGNALS: tuple[Signal, ...] = (
    # -- index series (engine) ------------------------------------------------------------------
    Signal("spot", _PTS, "last print of the underlying", "engine", _g("streamer_spot")),
    Signal("{index}_last", _PTS, "last print (or official close) of the index", "series"),
    Signal("{index}_prev_close", _PTS, "previous session's close of the index", "series"),
    Signal("{index}_change_ratio", _RATIO, "index change vs its previous close", "series"),
    Signal("{vol_index}_last", "vol points", "last print of the volatility index", "series",
           _g("streamer_vol_index", index="{vol_index}")),
    Signal("{vol_index}_prev_close", "vol points", "previous session's close of the volatility index", "series"),
    Signal("{vol_index}_change_ratio", _RATIO, "volatility-index change vs its previous close", "series",
           _g("streamer_vol_index_change_ratio", index="{vol_index}")),
    Signal("rv_1m_ewma_annual", _VOL, "EWMA (RiskMetrics λ) realized vol of 1-minute returns", "engine",
           _g("streamer_realized_vol", horizon="1m_ewma")),
    Signal("rv_1m_session_annual", _VOL, "realized vol of the session's 1-minute returns", "engine",
           _g("streamer_realized_vol", horizon="session_1m")),
    Signal("rv_cc_20d_annual", _VOL, "20-day close-to-close realized vol", "engine",
           _g("streamer_realized_vol", horizon="20d")),
    # -- option chain (engine: core/chain.py) ---------------------------------------------------
    Signal("gex_usd_per_pct", "USD per 1% spot move", "dealer gamma exposure at the live spot", "chain",
           _g("streamer_gex_usd_per_pct")),
    Signal("delta_exposure_usd", _USD, "dealer delta notional", "chain"),
    Signal("vanna_usd_per_vol_pt", "USD per vol point", "dealer vanna: delta change per +1 vol point", "chain",
           _g("streamer_vanna_usd_per_vol_pt")),
    Signal("charm_usd_per_day", "USD per calendar day", "dealer charm: delta change per calendar day", "chain",
           _g("streamer_charm_usd_per_day")),
    Signal("gex_0dte_usd_per_pct", "USD per 1% spot move", "dealer gamma of what settles today", "chain"),
    Signal("charm_0dte_usd_per_day", "USD per calendar day", "dealer charm of what settles today", "chain"),
    Signal("gex_next_rolloff_usd_per_pct", "USD per 1% spot move",
           "dealer gamma that leaves the aggregates at the next settlement", "chain"),
    Signal("charm_next_rolloff_usd_per_day", "USD per calendar day",
           "dealer charm that leaves the aggregates at the next settlement", "chain"),
    Signal("next_rolloff_hours", "hours", "event time to the next settlement", "chain"),
    Signal("gamma_flip", _PTS, "spot level where dealer gamma changes sign (60-point profile)", "chain",
           _g("streamer_gamma_flip")),
    Signal("call_wall", _PTS, "strike with the largest call gamma", "chain", _g("streamer_call_wall")),
    Signal("put_wall", _PTS, "strike with the largest put gamma", "chain", _g("streamer_put_wall")),
    Signal("abs_gamma_strike", _PTS, "strike with the largest call + put gamma", "chain"),
    Signal("atm_iv", _VOL, "mean call/put IV at the parity strike of the first expiry >= 7 days out", "chain",
           _g("streamer_atm_implied_vol")),
    Signal("vix_calc", "vol points", "our Cboe-method VIX from the chain", "chain",
           _g("streamer_vol_index", index="VIX_calc")),
    Signal("vix9d_calc", "vol points", "our Cboe-method VIX9D from the chain", "chain",
           _g("streamer_vol_index", index="VIX9D_calc")),
    # -- flow models (core/flows.py): VIX change statistics --------------------------------------
    Signal("vix_change_pts", "vol points", "VIX change vs its previous close", "flows"),
    Signal("vix_change_pct_rank", "fraction of window <= value", "rank of today's VIX % change in its window",
           "flows"),
    Signal("vix_change_low_rank", "rank (1 = lowest)", "rank from the bottom of today's VIX % change", "flows"),
    Signal("vix_change_history_days", "days", "one-day VIX changes in the rank window", "flows"),
    # vol control
    Signal("vol_control_{family}_vol_annual", _VOL, "the family's realized-vol estimate", "flows"),
    Signal("vol_control_{family}_exposure_ratio", _RATIO, "the family's applied equity exposure", "flows"),
    Signal("vol_control_exposure_ratio", _RATIO, "vol-control equity exposure (AUM-weighted families)", "flows"),
    Signal("vol_control_exposure_usd", _USD, "vol-control equity exposure", "flows"),
    Signal("vol_control_projection_spx", _PTS, "close the vol-control projection starts from "
           "(official close, or the live spot as provisional close)", "flows"),
    Signal("flow_vol_control_today_usd", _FLOW, "vol-control flow at the last close", "flows",
           _g("streamer_flow_usd", fund_type="vol_control", horizon="today")),
    Signal("flow_vol_control_next_close_usd", _FLOW, "projected vol-control flow at the next close", "flows",
           _g("streamer_flow_usd", fund_type="vol_control", horizon="next_close")),
    Signal("flow_vol_control_set_usd", _FLOW, "vol-control flow over the execution lag, already set by "
           "realized closes", "flows"),
    Signal("flow_vol_control_{horizon}_usd", _FLOW, "projected cumulative vol-control flow over the horizon "
           "(base scenario)", "flows", _g("streamer_flow_usd", fund_type="vol_control", horizon="{horizon}")),
    Signal("flow_vol_control_{horizon}_{scenario}_usd", _FLOW, "projected cumulative vol-control flow over "
           "the horizon along the scenario", "flows"),
    Signal("flow_vol_control_after_lag_{horizon}_usd", _FLOW, "projected vol-control flow over the horizon "
           "after the set (lagged) flows (base scenario)", "flows"),
    Signal("flow_vol_control_after_lag_{horizon}_{scenario}_usd", _FLOW, "projected vol-control flow over "
           "the horizon after the set flows, along the scenario", "flows"),
    # risk parity
    Signal("risk_parity_equity_vol_annual", _VOL, "risk-parity equity vol estimate", "flows"),
    Signal("risk_parity_bond_vol_annual", _VOL, "risk-parity bond vol estimate", "flows"),
    Signal("risk_parity_corr_ratio", "correlation", "equity/bond return correlation", "flows"),
    Signal("risk_parity_leverage_ratio", "times", "risk-parity leverage", "flows"),
    Signal("risk_parity_equity_alloc_ratio", _RATIO, "risk-parity equity allocation (of AUM)", "flows"),
    Signal("flow_risk_parity_today_usd", _FLOW, "risk-parity flow at the last close", "flows",
           _g("streamer_flow_usd", fund_type="risk_parity", horizon="today")),
    # CTA
    Signal("cta_signal_{component}_ratio", "sign (-1, 0, +1)", "CTA trend component", "flows"),
    Signal("cta_signal_score_ratio", "score in [-1, 1]", "weighted CTA trend score", "flows"),
    Signal("cta_signal_score_change_ratio", "score change", "CTA score change at the last close", "flows"),
    Signal("cta_position_ratio", _RATIO, "CTA position (of AUM)", "flows"),
    Signal("cta_position_usd", _USD, "CTA position", "flows"),
    Signal("flow_cta_today_usd", _FLOW, "CTA flow at the last close", "flows",
           _g("streamer_flow_usd", fund_type="cta", horizon="today")),
    Signal("cta_ma_fast_spx", _PTS, "CTA fast moving average", "flows"),
    Signal("cta_ma_slow_spx", _PTS, "CTA slow moving average", "flows"),
    Signal("cta_flip_{component}_spx", _PTS, "next close at which the component's sign flips", "flows"),
    # leveraged ETFs
    Signal("flow_leveraged_etf_close_usd", _FLOW, "leveraged-ETF rebalancing at the close, all funds", "flows",
           _g("streamer_flow_usd", fund_type="leveraged_etf", horizon="close")),
    Signal("flow_leveraged_etf_{group}_usd", _FLOW, "leveraged-ETF rebalancing at the close, funds on the "
           "benchmark group", "flows"),
    # dealers (flows read the chain's exposures, or the backtest's daily proxies)
    Signal("flow_dealer_gamma_usd", _FLOW, "dealer gamma hedge flow of today's move", "flows",
           _g("streamer_flow_usd", fund_type="dealer_gamma", horizon="now")),
    Signal("flow_dealer_vanna_usd", _FLOW, "dealer vanna hedge flow of today's implied-vol move (full "
           "revaluation per expiry under the VIX9D/VIX/VIX3M term-structure move, else -vanna x VIX change)",
           "flows",
           _g("streamer_flow_usd", fund_type="dealer_vanna", horizon="now")),
    Signal("flow_dealer_charm_usd", _FLOW, "dealer charm hedge flow over the charm horizon (full "
           "revaluation of the contracts alive after it, else -charm x horizon)", "flows",
           _g("streamer_flow_usd", fund_type="dealer_charm", horizon="now")),
    Signal("flow_dealer_total_usd", _FLOW, "dealer gamma + vanna hedge flow", "flows"),
    Signal("dealer_gex_usd_per_pct", "USD per 1% spot move", "dealer gamma the flow models hold", "flows"),
    Signal("dealer_vanna_usd_per_vol_pt", "USD per vol point", "dealer vanna the flow models hold", "flows"),
    Signal("dealer_charm_usd_per_day", "USD per calendar day", "dealer charm the flow models hold", "flows"),
    Signal("dealer_basis", "0 = live or dated chain, 1 = proxy (a chain of another date)",
           "what the dealer vanna/charm flows were revalued on (core/dealer_reval.py); NaN = no revaluation "
           "since the close: vanna is -vanna exposure x VIX change, charm -charm x horizon", "flows"),
    Signal("flow_systematic_today_usd", _FLOW, "vol control + risk parity + CTA + leveraged ETFs + dealers "
           "at the last close", "flows"),
)


def expand(values: Mapping[str, Iterable[str]], signals: Iterable[Signal] = SIGNALS) -> dict[str, Concrete]:
    """Concrete signals for ``values`` (placeholder -> its values, as given; names lower-cased).

    Raises ValueError for an unknown placeholder or two declarations giving the same name.

    >>> sorted(expand({"vol_index": ["VIX", "VIX9D"]}, [s for s in SIGNALS if s.name == "{vol_index}_last"]))
    ['vix9d_last', 'vix_last']
    >>> expand({"vol_index": ["VIX9D"]})["vix9d_last"].gauge_labels
    {'index': 'VIX9D'}
    """
    unknown = set(values) - set(PLACEHOLDERS)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}")
    vals = {k: list(dict.fromkeys(v)) for k, v in values.items()}
    out: dict[str, Concrete] = {}
    for s in signals:
        for binding in _bindings(s.placeholders, vals):
            name = s.name.format(**{k: v.lower() for k, v in binding.items()})
            if name in out:
                raise ValueError(f"signal {name!r} declared twice ({out[name].signal.name!r}, {s.name!r})")
            labels = {k: v.format(**binding) for k, v in s.gauge.labels} if s.gauge is not None else {}
            out[name] = Concrete(name, s, labels)
    return out


def _bindings(names: tuple[str, ...], vals: Mapping[str, list[str]]) -> Iterator[dict[str, str]]:
    if not names:
        yield {}
        return
    head, rest = names[0], names[1:]
    for v in vals.get(head, ()):
        for b in _bindings(rest, vals):
            yield {head: v, **b}


def gauges(concrete: Mapping[str, Concrete]) -> list[tuple[str, str, dict[str, str]]]:
    """(signal name, gauge metric, labels) of every concrete signal published as a gauge."""
    return [(c.name, c.signal.gauge.metric, c.gauge_labels) for c in concrete.values() if c.signal.gauge]
