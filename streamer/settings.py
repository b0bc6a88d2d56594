"""One typed settings object, from defaults, an optional TOML file and ``STREAMER_*`` environment variables
(later sources win). Every default says where it comes from."""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from streamer.errors import ConfigError


@dataclass(slots=True)
class Settings:
    """Runtime settings of the worker, simulator and tools."""

    #: Kafka bootstrap servers; the local broker of `streamer broker start` listens here
    bootstrap: str = "127.0.0.1:9092"
    #: prepended to every topic name and the consumer group (tests use one prefix per test)
    topic_prefix: str = ""
    #: partitions of each topic; all messages of one underlying share a partition (key = underlying)
    partitions: int = 2
    #: Prometheus endpoint of the worker (9308: unassigned in Prometheus' port allocation list)
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = 9308
    #: event-time interval between analytics snapshots per underlying, seconds
    analytics_interval_s: float = 1.0
    #: the worker processes input in batches of at most this many messages ...
    batch_max: int = 1000
    #: ... or whatever arrived within this many seconds (bounds the added latency)
    batch_within_s: float = 0.05
    #: RiskMetrics λ for the EWMA realized variance of 1-minute returns (J.P. Morgan 1996: 0.94 daily)
    ewma_lambda: float = 0.94
    #: trigger rules (TOML, format in streamer/core/rules.py); empty = the packaged
    #: streamer/rules/default.toml. The worker reloads the file when it changes.
    rules_file: str = ""
    #: risk-free rate, continuous annual decimal, for IVs, greeks and our VIX (3-month T-bill,
    #: Nov 2024 ≈ 4.5%; the VIX moves ~0.005 pt per 1% of rate, see VALIDATION.md)
    rate: float = 0.045
    #: S&P 500 dividend yield, continuous annual decimal (≈ 1.3% in 2024, S&P DJI)
    div_yield: float = 0.013
    #: index symbols published as implied-vol indices (gauges streamer_vol_index{index=...})
    vol_indices: tuple[str, ...] = ("VIX", "VIX9D", "VIX3M")
    #: Faust's own Prometheus sensors (per-event stream/topic/table metrics, ~0.1 ms per message
    #: on a 2-core machine: see BENCHMARKS.md); off trades those series for throughput
    faust_sensors: bool = True
    #: local state folder of the Faust worker
    data_dir: str = field(default_factory=lambda: os.path.expanduser("~/.cache/streamer/worker"))

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{h}" for h in self.bootstrap.split(","))


def load_settings(path: str | os.PathLike | None = None, **overrides) -> Settings:
    """Settings from defaults < TOML file (``path`` or env ``STREAMER_CONFIG``) < env < ``overrides``."""
    s = Settings()
    names = {f.name: f for f in dataclasses.fields(Settings)}
    path = path or os.environ.get("STREAMER_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from None
        for k, v in data.items():
            if k not in names:
                raise ConfigError(f"{path}: unknown setting {k!r}; known: {', '.join(sorted(names))}")
            _set(s, k, v)
    for k in names:
        env = os.environ.get("STREAMER_" + k.upper())
        if env is not None:
            _set(s, k, env)
    for k, v in overrides.items():
        if v is not None:
            _set(s, k, v)
    return s


def _set(s: Settings, name: str, value) -> None:
    current = getattr(s, name)
    try:
        if isinstance(current, tuple):
            value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        elif isinstance(current, bool):
            value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        else:
            value = type(current)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: cannot use {value!r} as {type(current).__name__}") from None
    setattr(s, name, value)
