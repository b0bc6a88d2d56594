"""Helpers for tests that compare engine states (``to_state()`` dicts) bit for bit."""
from __future__ import annotations

import numpy as np


def bytes_equal_states(x: dict, y: dict, skip=()) -> None:
    """Assert the same keys, and for each (except ``skip``) the same array bytes, dtype and shape, or an equal
    plain value (NaN equal to NaN)."""
    assert x.keys() == y.keys()
    for name in x:
        if name in skip:
            continue
        a, b = x[name], y[name]
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
        else:
            assert a == b or (a != a and b != b), name
