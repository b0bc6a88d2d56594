"""orjson encode/decode, configured once and reused (numpy scalars and arrays serialize natively)."""
from __future__ import annotations

from typing import Any

import orjson

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """Encode to compact JSON bytes. NaN/inf become null (JSON has neither)."""
    return orjson.dumps(obj, option=_OPTS)


loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError
