"""The one state encoding of the core's stateful objects (estimators here, flow models in ``core/flows``).

``to_state()`` returns plain JSON types; ``from_state(d)`` continues bit for bit. One convention:

* a float that is NaN ("not computable yet") or absent is written as ``None`` (JSON null: JSON has
  no NaN); ``load_float`` reads ``None`` back as NaN, ``load_opt_float`` as ``None`` for fields
  whose "absent" is ``None`` in memory (e.g. no previous close yet). Both also accept a NaN float,
  so states written by a codec that keeps NaN tokens restore the same;
* finite floats are written unchanged (``float`` round-trips through JSON exactly);
* every estimator's state carries ``{"type": <class name>, "v": STATE_VERSION}``, and
  ``estimator_from_state`` rebuilds any registered estimator from it.

>>> dump_float(float("nan")), dump_float(2.5), load_float(None), load_opt_float(None)
(None, 2.5, nan, None)
"""
from __future__ import annotations

import math
from typing import Any, Mapping, TypeVar

__all__ = ["STATE_VERSION", "dump_float", "load_float", "load_opt_float", "load_opt_int",
           "header", "check_type", "register", "estimator_from_state"]

STATE_VERSION = 1
"""Version of every estimator state layout; bump on any change to a ``to_state`` layout."""

_T = TypeVar("_T")
_REGISTRY: dict[str, Any] = {}


def dump_float(x: float) -> float | None:
    """float -> state value (NaN -> None)."""
    return None if x != x else float(x)


def load_float(x: Any) -> float:
    """State value -> float (None -> NaN)."""
    return math.nan if x is None else float(x)


def load_opt_float(x: Any) -> float | None:
    """State value -> float or None for an optional field (None and NaN -> None)."""
    return None if x is None or x != x else float(x)


def load_opt_int(x: Any) -> int | None:
    """State value -> int or None for an optional field."""
    return None if x is None else int(x)


def header(name: str) -> dict[str, Any]:
    """The ``type``/``v`` keys every estimator state starts with."""
    return {"type": name, "v": STATE_VERSION}


def check_type(d: Mapping[str, Any], name: str) -> None:
    """Raise ValueError unless ``d`` is a current-version state of ``name``."""
    if d.get("type") != name:
        raise ValueError(f"state is for {d.get('type')!r}, not {name!r}")
    if d.get("v") != STATE_VERSION:
        raise ValueError(f"unsupported state version {d.get('v')!r} for {name}")


def register(cls: _T) -> _T:
    """Class decorator: make ``cls`` restorable by ``estimator_from_state`` (keyed by its name)."""
    _REGISTRY[cls.__name__] = cls  # type: ignore[attr-defined]
    return cls


def estimator_from_state(d: Mapping[str, Any]) -> Any:
    """Rebuild any registered estimator from its ``to_state()`` dict (dispatch on "type").

    >>> from streamer.core.realized import Var
    >>> v = Var(); v.update(1.0); v.update(3.0)
    >>> estimator_from_state(v.to_state()).get()
    2.0
    """
    cls = _REGISTRY.get(d.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown estimator type {d.get('type')!r}")
    return cls.from_state(d)
