"""The topic contract: versioned names, keys and partitioning. Pure constants, no Kafka import.

Every topic is keyed by the *underlying* symbol (``SPX``), so one worker owns a whole chain and
everything derived from it: VIX ticks travel with key ``SPX`` because the VIX is computed from
SPX options. A prefix (env ``STREAMER_TOPIC_PREFIX``) lets tests and tenants use separate topics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

VERSION = "v1"


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The six topics of one deployment; ``prefix`` is prepended to every name."""

    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}streamer.{base}.{VERSION}"

    @property
    def index_ticks(self) -> str:
        """Index ticks and official daily closes (DailyClose), in order per underlying."""
        return self._name("index-ticks")

    @property
    def option_quotes(self) -> str:
        return self._name("option-quotes")

    @property
    def open_interest(self) -> str:
        return self._name("open-interest")

    @property
    def analytics(self) -> str:
        return self._name("analytics")

    @property
    def triggers(self) -> str:
        return self._name("triggers")

    @property
    def dead_letters(self) -> str:
        return self._name("dead-letters")

    @property
    def state(self) -> str:
        """The worker's checkpoints (compacted): key = underlying, value = engine state + input offsets."""
        return self._name("state")

    @property
    def group(self) -> str:
        """The worker's consumer group."""
        return f"{self.prefix}streamer-worker"

    def inputs(self) -> list[str]:
        """The co-partitioned inputs, in the order of ``streamer.pipeline.KINDS``."""
        return [self.index_ticks, self.option_quotes, self.open_interest]

    def outputs(self) -> list[str]:
        return [self.analytics, self.triggers, self.dead_letters]

    def all(self) -> list[str]:
        return self.inputs() + self.outputs() + [self.state]

    def config(self, name: str) -> dict[str, str]:
        """Topic-level configs to create ``name`` with (the state topic is compacted and takes large records)."""
        if name == self.state:
            return dict(STATE_TOPIC_CONFIG)
        return {}


# One checkpoint record holds a whole option chain (~1-3 MB compressed at 20k contracts): compacted, so
# only the latest checkpoint of each underlying is kept, and up to 64 MiB a record.
STATE_MAX_BYTES = 64 * 1024 * 1024
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "max.message.bytes": str(STATE_MAX_BYTES),
                      "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}


def topic_names(prefix: str | None = None) -> TopicNames:
    """Topic names for ``prefix`` (default: env ``STREAMER_TOPIC_PREFIX`` or none).

    >>> topic_names("t1-").triggers
    't1-streamer.triggers.v1'
    """
    if prefix is None:
        prefix = os.environ.get("STREAMER_TOPIC_PREFIX", "")
    return TopicNames(prefix)
