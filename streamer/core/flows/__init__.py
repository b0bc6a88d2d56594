"""Systematic-flow models: vol control, risk parity, CTA trend, leveraged ETFs, dealer hedging.

Every parameter lives in one documented config, ``streamer/config/flows.toml`` (``FlowConfig``).
One object, :class:`FlowBook`, owns all models for one underlying (SPX) and is driven the same way
live and offline:

* ``on_daily_close(date, spx_close, vix_close, bond)`` once per session (O(1) estimator updates plus
  a bounded projection: horizon x scenarios x families steps, ~300 for the default config);
* ``on_spot(ts_ns, spx)`` / ``on_vol_index(ts_ns, vix)`` intraday (O(1); the VIX rank is
  O(log n) with a sorted bounded history); ``on_spot`` also re-runs the vol-control projection
  with the live spot as the session's provisional close, on the first print after a daily close
  and then at most once per ``vol_control.reproject_interval_s`` of event time (deterministic);
* ``on_underlying(ts_ns, symbol, price)`` intraday for the leveraged funds' underlyings (QQQ, SOXX,
  TSLA, ... ``FlowConfig.leveraged_etf.symbols``; their closes go to ``on_daily_close(...,
  underlying_closes=)``): each fund's flow uses its own benchmark's return, the SPX-beta proxy only
  without a price (``leveraged_etf_breakdown()`` says which);
* ``on_exposures(ts_ns, gex, vanna, charm)`` when the chain's dealer exposures change;
* ``signals()`` -> named signals with units in the names; ``to_state``/``from_state``.

Conventions. Flows are signed US dollars of S&P 500 exposure bought (+) or sold (-). Model
exposures are fractions of AUM (``*_ratio``). Realized vols come from ``streamer.core.realized``
estimators (zero-mean, 252 days); projections copy the estimators through their state and feed them
a synthetic path, so the big days leaving the windows are accounted for by the estimators
themselves. A flow is AUM x the change of exposure (the passive drift of the position with the
market is not counted), as strategists quote them.

One model per module (``core/flows/``): ``config`` (the TOML reader), ``vol_control``,
``risk_parity``, ``cta``, ``leveraged_etfs``, ``dealer``, ``rank`` (VIX change rank), ``book``
(``FlowBook``); states use the one encoding of ``streamer.core.realized.state`` (NaN <-> null).
``from streamer.core.flows import X`` keeps working for every name below.
"""
from __future__ import annotations

from streamer.core.flows.book import SIGNAL_UNITS, FlowBook
from streamer.core.flows.config import (DEFAULT_CONFIG_PATH, ConfigError, CTAConfig, DealerConfig, FlowConfig,
                                        LevETFConfig, LevFund, PathScenario, RiskParityConfig, VolControlConfig,
                                        VolFamily)
from streamer.core.flows.cta import CTATrend
from streamer.core.flows.dealer import DealerHedging
from streamer.core.flows.leveraged_etfs import FundFlow, LeveragedETFs, UnderlyingPrices, leveraged_etf_flow
from streamer.core.flows.rank import RankHistory
from streamer.core.flows.risk_parity import RiskParity
from streamer.core.flows.vol_control import VolControl, vol_control_exposure

__all__ = [
    "DEFAULT_CONFIG_PATH", "FlowConfig", "VolFamily", "PathScenario", "VolControlConfig",
    "RiskParityConfig", "CTAConfig", "LevFund", "LevETFConfig", "DealerConfig", "ConfigError",
    "RankHistory", "VolControl", "RiskParity", "CTATrend", "LeveragedETFs", "DealerHedging",
    "FlowBook", "leveraged_etf_flow", "vol_control_exposure", "SIGNAL_UNITS", "FundFlow", "UnderlyingPrices",
]
