"""Every Prometheus metric of streamer, defined once.

Conventions (checked by ``tests/unit/test_metrics.py``): ``streamer_`` prefix, base units
(seconds, messages, USD, annualized decimal vol), ``_total`` on counters, ``_seconds`` on
durations and timestamps.

The worker uses the module-level singleton on the default registry::

    from streamer.metrics import METRICS as m
    m.msgs_in(topic).inc(n)                     # cached child, no .labels() lookup
    m.latency(topic).observe(publish_s - event_s)
    u = m.underlying("SPX")                     # bundle of per-underlying gauges
    u.spot.set(5321.5); u.realized_vol("1d").set(0.142); u.flow("cta", "1d").set(-2.1e9)

Tests build their own isolated set: ``Metrics(CollectorRegistry())``.

Hot path: ``metric.labels(...)`` costs ~1.4 µs (label validation, str conversion, a lock) —
as much as the ``inc()`` itself (~0.8 µs). The ``LabelCache`` objects below resolve each label
combination once and then cost one dict lookup (~60 ns). Label *values* that vary without bound
(ids, prices) must never become labels; the only labels here are topic, partition, rule,
severity, reason, underlying, horizon, index and fund_type, all small sets.

Gauges for analytics may be set to NaN (the core's "no value" convention): Prometheus stores
NaN, comparisons with NaN are false, so alerts stay silent and panels show a gap.
"""
from __future__ import annotations

import math
import platform
import time
from typing import Any, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import start_http_server as _prom_start_http_server

import streamer
from streamer.core.signals import SIGNALS, Concrete

PREFIX = "streamer_"

# event time -> publish; 1 ms .. 30 s, roughly 1-2.5-5 per decade, plus 30 s for replays/backlog
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)

# fund types of streamer_flow_usd (one per model in streamer/core/flows), as the signal catalogue declares them
FUND_TYPES: tuple[str, ...] = tuple(dict.fromkeys(
    v for s in SIGNALS if s.gauge is not None and s.gauge.metric == "streamer_flow_usd"
    for k, v in s.gauge.labels if k == "fund_type"))

DEFAULT_PORT = 9308
DEFAULT_ADDR = "127.0.0.1"

# Series that dashboards (grafana/dashboards/*.json) and alert/recording rules
# (deploy/prometheus/rules/*.yml) read, as Prometheus sample names (histograms: `_bucket` etc.).
# tests/unit/test_grafana.py keeps this in sync with what the files actually reference, so an
# integration test can assert each one has data in a real Prometheus after a simulated run.
# Note: counters labelled by rule/reason only appear once touched (see Metrics.declare_rule).
DASHBOARD_SERIES: tuple[str, ...] = (
    "streamer_atm_implied_vol",
    "streamer_build_info",
    "streamer_call_wall",
    "streamer_charm_usd_per_day",
    "streamer_consumer_lag_messages",
    "streamer_dead_letters_total",
    "streamer_flow_usd",
    "streamer_gamma_flip",
    "streamer_gex_usd_per_pct",
    "streamer_last_event_timestamp_seconds",
    "streamer_last_trigger_timestamp_seconds",
    "streamer_messages_in_total",
    "streamer_messages_out_total",
    "streamer_processing_latency_seconds_bucket",
    "streamer_put_wall",
    "streamer_realized_vol",
    "streamer_rule_evaluations_total",
    "streamer_spot",
    "streamer_triggers_total",
    "streamer_vanna_usd_per_vol_pt",
    "streamer_vol_index",
    "streamer_vol_index_change_ratio",
    "streamer_worker_up",
)

# Series Prometheus itself produces that dashboards/rules may reference.
PROMETHEUS_SERIES: tuple[str, ...] = ("up", "ALERTS", "ALERTS_FOR_STATE")


class LabelCache(dict):
    """Cache of a labelled metric's children: ``cache(*labelvalues)`` returns the child.

    The first call per label combination pays ``metric.labels()``; later calls are one dict
    lookup. Values are normalized with ``str`` once, on the miss, so ``cache("t", 3)`` and
    ``cache("t", "3")`` give the same child.

    >>> from prometheus_client import CollectorRegistry, Counter
    >>> c = Counter("demo_total", "demo", ["topic"], registry=CollectorRegistry())
    >>> msgs = LabelCache(c)
    >>> msgs("ticks-v1").inc(3)
    >>> msgs("ticks-v1") is msgs("ticks-v1")
    True
    """

    __slots__ = ("metric", "allowed")

    def __init__(self, metric: Any, allowed: dict[int, Iterable[str]] | None = None) -> None:
        super().__init__()
        self.metric = metric
        # optional cardinality guard: position -> allowed values, checked on a miss only
        self.allowed = {i: frozenset(v) for i, v in (allowed or {}).items()}

    def __call__(self, *labelvalues: Any) -> Any:
        try:
            return self[labelvalues]
        except KeyError:
            return self._miss(labelvalues)

    def _miss(self, labelvalues: tuple) -> Any:
        values = tuple(str(v) for v in labelvalues)
        for i, ok in self.allowed.items():
            if i < len(values) and values[i] not in ok:
                names = self.metric._labelnames
                raise ValueError(
                    f"{self.metric._name}: {names[i]}={values[i]!r} not in {sorted(ok)}"
                )
        child = self.metric.labels(*values)
        self[labelvalues] = child
        self[values] = child
        return child


class UnderlyingMetrics:
    """The analytics gauges of one underlying, children resolved once.

    Single-label gauges are attributes (``u.spot.set(x)``); gauges with a second label are
    cached callables (``u.realized_vol("1d").set(0.14)``, ``u.flow("cta", "1d").set(-2e9)``).
    """

    __slots__ = (
        "underlying", "spot", "atm_implied_vol", "gex_usd_per_pct", "gamma_flip",
        "call_wall", "put_wall", "vanna_usd_per_vol_pt", "charm_usd_per_day",
        "_realized_vol", "_vol_index", "_vol_index_change_ratio", "_flow", "_m",
    )

    def __init__(self, m: "Metrics", underlying: str) -> None:
        self.underlying = underlying
        self.spot = m.spot_g.labels(underlying)
        self.atm_implied_vol = m.atm_implied_vol_g.labels(underlying)
        self.gex_usd_per_pct = m.gex_usd_per_pct_g.labels(underlying)
        self.gamma_flip = m.gamma_flip_g.labels(underlying)
        self.call_wall = m.call_wall_g.labels(underlying)
        self.put_wall = m.put_wall_g.labels(underlying)
        self.vanna_usd_per_vol_pt = m.vanna_usd_per_vol_pt_g.labels(underlying)
        self.charm_usd_per_day = m.charm_usd_per_day_g.labels(underlying)
        self._realized_vol: dict[str, Any] = {}
        self._vol_index: dict[str, Any] = {}
        self._vol_index_change_ratio: dict[str, Any] = {}
        self._flow: dict[tuple[str, str], Any] = {}
        self._m = m

    def realized_vol(self, horizon: str) -> Any:
        """Child of ``streamer_realized_vol{underlying,horizon}`` (annualized decimal)."""
        try:
            return self._realized_vol[horizon]
        except KeyError:
            c = self._realized_vol[horizon] = self._m.realized_vol_g.labels(self.underlying, horizon)
            return c

    def vol_index(self, index: str) -> Any:
        """Child of ``streamer_vol_index{underlying,index}`` (index points, e.g. 16.4)."""
        try:
            return self._vol_index[index]
        except KeyError:
            c = self._vol_index[index] = self._m.vol_index_g.labels(self.underlying, index)
            return c

    def vol_index_change_ratio(self, index: str) -> Any:
        """Child of ``streamer_vol_index_change_ratio{underlying,index}`` (-0.206 = -20.6 %)."""
        try:
            return self._vol_index_change_ratio[index]
        except KeyError:
            c = self._vol_index_change_ratio[index] = self._m.vol_index_change_ratio_g.labels(
                self.underlying, index
            )
            return c

    def flow(self, fund_type: str, horizon: str) -> Any:
        """Child of ``streamer_flow_usd{underlying,fund_type,horizon}``; fund_type in FUND_TYPES."""
        key = (fund_type, horizon)
        try:
            return self._flow[key]
        except KeyError:
            if fund_type not in FUND_TYPES:
                raise ValueError(f"fund_type {fund_type!r} not in {FUND_TYPES}") from None
            c = self._flow[key] = self._m.flow_usd_g.labels(self.underlying, fund_type, horizon)
            return c


class Metrics:
    """All streamer metrics, registered on ``registry`` (default: the global one).

    Metric objects end in ``_c`` (counter), ``_h`` (histogram), ``_g`` (gauge); the hot-path
    accessors without suffix return cached children.
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        r = {"registry": registry}

        # --- pipeline -------------------------------------------------------------------
        self.messages_in_c = Counter(
            "streamer_messages_in_total", "Messages consumed, per source topic.", ["topic"], **r)
        self.messages_out_c = Counter(
            "streamer_messages_out_total", "Messages produced, per sink topic.", ["topic"], **r)
        self.processing_latency_h = Histogram(
            "streamer_processing_latency_seconds",
            "Event time to publish time of produced messages, per sink topic.",
            ["topic"], buckets=LATENCY_BUCKETS_SECONDS, **r)
        self.consumer_lag_g = Gauge(
            "streamer_consumer_lag_messages",
            "Consumer lag: log-end offset minus committed/next offset.",
            ["topic", "partition"], **r)
        self.dead_letters_c = Counter(
            "streamer_dead_letters_total", "Messages sent to the dead-letter topic, per reason.",
            ["reason"], **r)
        self.last_event_timestamp_g = Gauge(
            "streamer_last_event_timestamp_seconds",
            "Wall-clock Unix time when a message on the topic was last processed "
            "(not event time, so replays of old data do not look stale).",
            ["topic"], **r)
        self.late_inputs_c = Counter(
            "streamer_late_inputs_total",
            "Input rows that arrived after their event-time segment had closed (applied with the next one).", **r)
        self.conflated_quotes_c = Counter(
            "streamer_conflated_quotes_total",
            "Quotes superseded within a segment by a later quote of the same contract (counted, not applied).", **r)
        self.checkpoints_c = Counter(
            "streamer_checkpoints_total", "Engine checkpoints written to the state topic.", **r)
        self.state_bytes_c = Counter(
            "streamer_state_bytes_written_total", "Bytes of engine checkpoints written to the state topic.", **r)
        self.suspect_ticks_c = Counter(
            "streamer_suspect_ticks_total",
            "Index prints held as implausible jumps, by outcome: held, confirmed (taken), discarded.",
            ["symbol", "outcome"], **r)
        self.triggers_withheld_c = Counter(
            "streamer_triggers_withheld_total",
            "Trigger events not published because a number in them was not finite, per rule.", ["rule"], **r)
        self.input_seq_g = Gauge(
            "streamer_input_seq",
            "Inputs of the underlying its engine has applied (restored from a checkpoint after a restart).",
            ["underlying"], **r)
        self.partitions_assigned_g = Gauge(
            "streamer_partitions_assigned", "Input partitions this worker owns (and has loaded).", **r)
        self.worker_up_g = Gauge(
            "streamer_worker_up",
            "1 while the worker serves (partitions loaded, broker reachable); 0 while starting, "
            "stopping or cut off from the broker.", **r)
        self.build_info_i = Info("streamer_build", "Build and runtime versions.", **r)

        # --- rules ----------------------------------------------------------------------
        self.rule_evaluations_c = Counter(
            "streamer_rule_evaluations_total", "Trigger-rule evaluations, per rule.", ["rule"], **r)
        self.triggers_c = Counter(
            "streamer_triggers_total", "Trigger events emitted, per rule and severity.",
            ["rule", "severity"], **r)
        self.rule_reloads_c = Counter(
            "streamer_rule_reloads_total",
            "Rule-file reloads by result: loaded, or rejected (invalid file; old rules kept).",
            ["result"], **r)
        self.last_trigger_timestamp_g = Gauge(
            "streamer_last_trigger_timestamp_seconds",
            "Unix time (event time) of the last trigger, per rule.", ["rule"], **r)

        # --- analytics, per underlying --------------------------------------------------
        u = ["underlying"]
        self.spot_g = Gauge("streamer_spot", "Last index level (index points).", u, **r)
        self.realized_vol_g = Gauge(
            "streamer_realized_vol", "Realized volatility, annualized decimal (0.15 = 15 %).",
            u + ["horizon"], **r)
        self.atm_implied_vol_g = Gauge(
            "streamer_atm_implied_vol", "At-the-money implied vol, annualized decimal.", u, **r)
        self.vol_index_g = Gauge(
            "streamer_vol_index",
            "Volatility index level in index points; index=VIX published, VIX_calc ours.",
            u + ["index"], **r)
        self.vol_index_change_ratio_g = Gauge(
            "streamer_vol_index_change_ratio",
            "One-day change of the vol index vs previous close, ratio (-0.206 = -20.6 %).",
            u + ["index"], **r)
        self.gex_usd_per_pct_g = Gauge(
            "streamer_gex_usd_per_pct", "Dealer gamma exposure, USD per 1 % spot move.", u, **r)
        self.gamma_flip_g = Gauge(
            "streamer_gamma_flip", "Spot level where dealer gamma changes sign (index points).",
            u, **r)
        self.call_wall_g = Gauge(
            "streamer_call_wall", "Strike with the largest call gamma (index points).", u, **r)
        self.put_wall_g = Gauge(
            "streamer_put_wall", "Strike with the largest put gamma (index points).", u, **r)
        self.vanna_usd_per_vol_pt_g = Gauge(
            "streamer_vanna_usd_per_vol_pt",
            "Dealer vanna: delta notional change in USD per 1 vol point.", u, **r)
        self.charm_usd_per_day_g = Gauge(
            "streamer_charm_usd_per_day",
            "Dealer charm: delta notional change in USD per calendar day.", u, **r)
        self.flow_usd_g = Gauge(
            "streamer_flow_usd",
            "Estimated systematic flow in USD (positive = buying) per fund type and horizon.",
            u + ["fund_type", "horizon"], **r)

        # --- cached children for the hot path ------------------------------------------
        self.msgs_in = LabelCache(self.messages_in_c)
        self.msgs_out = LabelCache(self.messages_out_c)
        self.latency = LabelCache(self.processing_latency_h)
        self.consumer_lag = LabelCache(self.consumer_lag_g)
        self.dead_letters = LabelCache(self.dead_letters_c)
        self.last_event = LabelCache(self.last_event_timestamp_g)
        self.rule_evaluations = LabelCache(self.rule_evaluations_c)
        self.triggers = LabelCache(self.triggers_c)
        self.last_trigger = LabelCache(self.last_trigger_timestamp_g)
        self.rule_reloads = LabelCache(self.rule_reloads_c)
        self.late_inputs = self.late_inputs_c
        self.input_seq = LabelCache(self.input_seq_g)
        self.suspect_ticks = LabelCache(self.suspect_ticks_c)
        self.triggers_withheld = LabelCache(self.triggers_withheld_c)
        self.conflated_quotes = self.conflated_quotes_c
        self.checkpoints = self.checkpoints_c
        self.state_bytes = self.state_bytes_c
        self._underlyings: dict[str, UnderlyingMetrics] = {}
        self._gauges: dict[str, Any] = {}
        self._signal_children: dict[tuple[str, str], Any] = {}

    # --- analytics from the signal catalogue -----------------------------------------------

    def signal_gauges(self) -> dict[str, Any]:
        """Gauge metric objects by Prometheus name (those the signal catalogue may name)."""
        return {g._name: g for g in self.metric_objects() if isinstance(g, Gauge)}

    def set_signals(self, underlying: str, values: dict[str, float | None],
                    catalogue: dict[str, Concrete]) -> int:
        """Set every gauge the signal catalogue (streamer/core/signals.py, expanded: ``engine.catalogue()``)
        declares, from one snapshot's ``values`` (None → NaN); signals absent from ``values`` (a volatility
        index not seen yet) are left alone. Children are resolved once per (underlying, signal).
        Returns how many gauges were set."""
        cache = self._signal_children
        n = 0
        for name, c in catalogue.items():
            if c.signal.gauge is None or name not in values:
                continue
            child = cache.get((underlying, name))
            if child is None:
                g = self._gauges.get(c.signal.gauge.metric)
                if g is None:
                    g = self._gauges[c.signal.gauge.metric] = self.signal_gauges()[c.signal.gauge.metric]
                child = cache[(underlying, name)] = g.labels(underlying=underlying, **c.gauge_labels)
            x = values[name]
            child.set(math.nan if x is None else x)
            n += 1
        return n

    # --- convenience ----------------------------------------------------------------------

    def underlying(self, name: str) -> UnderlyingMetrics:
        """The per-underlying gauge bundle, created once per name."""
        try:
            return self._underlyings[name]
        except KeyError:
            b = self._underlyings[name] = UnderlyingMetrics(self, name)
            return b

    def declare_rule(self, rule: str, severities: Iterable[str] = ("info", "warning", "critical")
                     ) -> None:
        """Create a rule's series at 0 at startup.

        A counter born at 1 is invisible to ``increase()`` for its first event; pre-creating
        the series lets the first trigger count (the alert rule copes either way).
        """
        self.rule_evaluations(rule)
        for sev in severities:
            self.triggers(rule, sev)

    def declare_topic(self, topic: str, *, source: bool = True, sink: bool = False) -> None:
        """Create a topic's counters at 0 so rates exist before the first message."""
        if source:
            self.msgs_in(topic)
        if sink:
            self.msgs_out(topic)
            self.latency(topic)

    def trigger(self, rule: str, severity: str, ts_s: float) -> None:
        """Count one trigger and record its (event) time in seconds."""
        self.triggers(rule, severity).inc()
        self.last_trigger(rule).set(ts_s)

    def seen(self, topic: str, n: int = 1) -> None:
        """Count ``n`` consumed messages and stamp the topic's wall-clock last-event time."""
        self.msgs_in(topic).inc(n)
        self.last_event(topic).set(time.time())

    def set_build_info(self, **extra: str) -> None:
        """Fill ``streamer_build_info`` (version, python, faust) plus ``extra`` labels."""
        info = {"version": streamer.__version__, "python": platform.python_version()}
        try:
            from importlib.metadata import version
            info["faust"] = version("faust-streaming")
        except Exception:  # pragma: no cover - metadata missing in odd installs
            info["faust"] = "unknown"
        info.update({k: str(v) for k, v in extra.items()})
        self.build_info_i.info(info)

    def metric_objects(self) -> list[Any]:
        """Every metric object defined here (for convention checks)."""
        return [v for k, v in vars(self).items() if k.endswith(("_c", "_h", "_g", "_i"))]


METRICS = Metrics()


def start_http_server(port: int = DEFAULT_PORT, addr: str = DEFAULT_ADDR,
                      registry: CollectorRegistry = REGISTRY) -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns (server, thread).

    Defaults to loopback; in containers pass ``addr="0.0.0.0"`` so Prometheus can reach it.
    ``port=0`` picks a free port (read it from ``server.server_port``).
    """
    return _prom_start_http_server(port, addr=addr, registry=registry)
