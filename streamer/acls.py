"""Who may do what on a secured cluster: the Kafka ACLs of the worker and simulator principals.

One source for the secured local broker (streamer.broker, created with the Kafka admin API) and
the Strimzi ``KafkaUser`` resources in deploy/k8s (a test checks they agree). Pure data, no Kafka import.

The worker reads the input topics in its consumer group, writes the output topics, reads and writes
its compacted state topic, and creates the topics it needs at start-up when they are missing; the
simulator (any market-data publisher) writes the inputs. Nothing else is granted: in particular the
worker cannot write to its inputs and the simulator cannot read anything.
"""
from __future__ import annotations

from dataclasses import dataclass

from streamer.topics import VERSION, TopicNames

#: the worker's consumer group id (prefixed like the topics)
WORKER_GROUP = "streamer-worker"


@dataclass(frozen=True, slots=True)
class Acl:
    """ALLOW ``operation`` on ``resource_type`` ``name`` (literal pattern) to ``User:principal``."""

    principal: str
    resource_type: str   # "topic" | "group"
    name: str
    operation: str       # "Read" | "Write" | "Describe" | "Create"


def state_topic(names: TopicNames) -> str:
    """The worker's compacted state topic (``streamer.state.v1``)."""
    state = getattr(names, "state", None)  # the contract names it once the worker writes it
    return state if isinstance(state, str) else f"{names.prefix}streamer.state.{VERSION}"


def worker_group(names: TopicNames) -> str:
    """The worker's consumer group id (prefixed like the topics)."""
    group = getattr(names, "group", None)
    return group if isinstance(group, str) else f"{names.prefix}{WORKER_GROUP}"


def worker_acls(prefix: str = "", principal: str = "streamer-worker") -> list[Acl]:
    names = TopicNames(prefix)
    state = state_topic(names)
    acls = [Acl(principal, "topic", t, op) for t in names.inputs() for op in ("Read", "Describe")]
    acls += [Acl(principal, "topic", t, op) for t in names.outputs() for op in ("Write", "Describe")]
    acls += [Acl(principal, "topic", state, op) for op in ("Read", "Write", "Describe")]
    # the worker creates its topics when missing (idempotent; an existing topic is left as it is)
    acls += [Acl(principal, "topic", t, "Create") for t in dict.fromkeys([*names.all(), state])]
    acls.append(Acl(principal, "group", worker_group(names), "Read"))
    return acls


def simulator_acls(prefix: str = "", principal: str = "streamer-simulator") -> list[Acl]:
    names = TopicNames(prefix)
    return [Acl(principal, "topic", t, op) for t in names.inputs() for op in ("Write", "Describe", "Create")]
