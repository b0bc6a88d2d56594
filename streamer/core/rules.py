"""Trigger rules: declarative rule sets over named signals.

Plain data with ``to_state``/``load_state``, so the worker keeps them in a changelogged table and
the backtest runs the very same objects over history. :class:`RuleSet` holds rules from a TOML file
(``RuleSet.from_toml``) over any named signal: thresholds, changes over a period, percentile rank
within a trailing history, ``all``/``any`` combinations, hysteresis (re-arm only after the condition
clears), cooldown, severity, direction and which signal supplies the estimated notional. ``evaluate(signals, ts_ns)`` returns :class:`Fired`
  records; deterministic event ids are made outside the core (``streamer.schemas.event_id``).

Rule file format (see ``streamer/rules/default.toml`` for a documented example)::

    version = 1
    [[rule]]
    name = "election_vol_collapse"          # unique, [a-z0-9_]
    description = "Election-style implied-vol collapse"
    direction = "buy"                       # buy | sell
    severity = "warning"                    # info | warning | critical
    critical = { signal = "vix_change_ratio", op = "<=", value = -0.20 }   # optional upgrade
    notional = ["flow_dealer_vanna_usd", "flow_dealer_charm_usd"]   # a signal or a list (summed, NaN terms skipped)
    notional_min = 5e9                      # optional: fire only when |notional| >= this (USD)
    context = ["spx_change_ratio"]          # optional: extra signal values copied into inputs
    cooldown = "1d"                         # optional, durations: s m h d w y (y = 365 d)
    when.all = [                            # all = AND, any = OR; items nest
      { signal = "vix_change_ratio", op = "<=", value = -0.15, rearm = -0.10 },
      { signal = "vix_change_ratio", percentile_window = 756, sample_every = "1d", op = "<=", value = 0.01 },
      { any = [ { signal = "a", op = ">", value = 1 }, { signal = "b", change_over = "5d", op = ">", value = 0 } ] },
    ]

Leaves: plain threshold (``signal op value``); ``change_over`` (value now minus value at least that
long ago, from a bounded sampled history); ``percentile_window`` (fraction of the last N samples -
one per ``sample_every``, the last value of each period - that are <= the value now). A missing or
NaN signal makes its leaf false. ``rearm`` (optional, per leaf) is the level the leaf must clear
before the rule re-arms; the rule re-arms when the condition evaluated at the re-arm levels is false.

Notional guard: a rule with a ``notional`` fires only when the summed notional is finite and has
the sign of its direction (a BUY > 0, a SELL < 0) and at least ``notional_min`` in size; otherwise
the firing is refused (the rule stays armed, ``Rule.n_refused`` counts it). The trigger names the
flows it sums: ``inputs["notional:<signal>"]`` per term, the sum in ``estimated_notional_usd``, the
guard level in ``thresholds["notional_usd_min"]`` (buy) / ``["notional_usd_max"]`` (sell), and the
reason spells out the sum.
"""
from __future__ import annotations

import difflib
import math
import operator
import re
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping

from streamer.core.flows import RankHistory

OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
DEFAULT_RULES_PATH = Path(__file__).resolve().parents[1] / "rules" / "default.toml"
DIRECTIONS = ("buy", "sell")
SEVERITIES = ("info", "warning", "critical")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*$")
_DUR_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86_400 * 10**9,
           "w": 7 * 86_400 * 10**9, "y": 365 * 86_400 * 10**9}
_OP_WORD = {"<=": "max", "<": "max", ">=": "min", ">": "min"}
_NAN = math.nan


class RuleError(ValueError):
    """An invalid rule file. ``source`` (file or "<text>"), ``rule`` and ``field`` say where.

    A live worker that hot-reloads rules catches this and keeps its old rules.
    """

    retriable = False

    def __init__(self, source: str, rule: str | None, field_: str | None, detail: str) -> None:
        where = source + (f": rule {rule!r}" if rule else "") + (f": field {field_!r}" if field_ else "")
        super().__init__(f"{where}: {detail}")
        self.source, self.rule, self.field, self.detail = source, rule, field_, detail


def parse_duration_ns(text: str | int | float) -> int:
    """Duration string ("90s", "15m", "4h", "5d", "2w", "3y" with y = 365 days) or seconds -> ns.

    >>> parse_duration_ns("5d") // 10**9, parse_duration_ns(30) // 10**9
    (432000, 30)
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        if not text >= 0:
            raise ValueError(f"duration must be >= 0, got {text!r}")
        return int(round(text * 10**9))
    m = _DUR_RE.match(str(text))
    if not m:
        raise ValueError(f"not a duration (number + one of s m h d w y): {text!r}")
    return int(round(float(m.group(1)) * _DUR_NS[m.group(2)]))


def fmt_value(name: str, x: float | None) -> str:
    """Trader-readable value by the unit in the signal name.

    >>> fmt_value("vix_change_ratio", -0.2059), fmt_value("flow_x_usd", 5.3e10), fmt_value("spx", 5929.04)
    ('-20.6%', '+$53.0bn', '5929.04')
    """
    if x is None or x != x:
        return "n/a"
    if name.endswith("_usd"):
        return f"{'+' if x >= 0 else '-'}${abs(x) / 1e9:.1f}bn"
    if name.endswith("_ratio") or "pct_rank" in name:
        return f"{x:+.1%}" if name.endswith("_ratio") else f"{x:.2%}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.4g}"


# ------------------------------------------------------------------------------- leaves


@dataclass(slots=True)
class _Change:
    """Value now minus the value at least ``period_ns`` ago (sampled: <= 64 kept per period)."""

    period_ns: int
    hist: deque[tuple[int, float]] = field(default_factory=deque)

    def value(self, x: float, ts_ns: int) -> float:
        h = self.hist
        bucket = max(self.period_ns // 64, 1)
        if x == x:
            if h and h[-1][0] // bucket == ts_ns // bucket:
                h[-1] = (ts_ns, x)
            elif not h or ts_ns > h[-1][0]:
                h.append((ts_ns, x))
        cutoff = ts_ns - self.period_ns
        while len(h) >= 2 and h[1][0] <= cutoff:
            h.popleft()
        if x != x or not h or h[0][0] > cutoff:
            return _NAN
        return x - h[0][1]

    def to_state(self) -> list:
        return [[t, v] for t, v in self.hist]

    def load(self, d: list) -> None:
        self.hist = deque((int(t), float(v)) for t, v in d)


@dataclass(slots=True)
class _Percentile:
    """Fraction of the last ``window`` period samples <= the value now (O(log window))."""

    window: int
    sample_ns: int
    hist: RankHistory = field(default=None)  # type: ignore[assignment]
    pending: float = _NAN
    pending_bucket: int | None = None

    def __post_init__(self) -> None:
        if self.hist is None:
            self.hist = RankHistory(self.window)

    def value(self, x: float, ts_ns: int) -> float:
        b = ts_ns // self.sample_ns
        if self.pending_bucket is not None and b > self.pending_bucket:
            self.hist.push(self.pending)          # the completed period's last value
            self.pending, self.pending_bucket = _NAN, None
        if x == x and (self.pending_bucket is None or b >= self.pending_bucket):
            self.pending, self.pending_bucket = x, b
        return self.hist.pct_rank(x) if len(self.hist) >= min(self.window, 20) else _NAN

    def to_state(self) -> dict:
        return {"hist": self.hist.to_state(), "pending": None if self.pending != self.pending else self.pending,
                "pending_bucket": self.pending_bucket}

    def load(self, d: dict) -> None:
        self.hist = RankHistory.from_state(d["hist"])
        self.pending = _NAN if d["pending"] is None else float(d["pending"])
        self.pending_bucket = d["pending_bucket"]


@dataclass(slots=True)
class Leaf:
    """One comparison ``f(signal) op value`` where f is identity, change or percentile rank."""

    signal: str
    op: str
    value: float
    rearm: float | None = None
    change: _Change | None = None
    pct: _Percentile | None = None
    label: str = ""

    @property
    def key(self) -> str:
        """Name of the quantity compared (used in inputs, thresholds and state)."""
        return self.label or self.signal

    def evaluate(self, signals: Mapping[str, float | None], ts_ns: int) -> tuple[float, bool, bool]:
        """(quantity, hit at value, hit at rearm level). Updates the leaf's history."""
        x = signals.get(self.signal)
        x = _NAN if x is None else float(x)
        if self.change is not None:
            x = self.change.value(x, ts_ns)
        elif self.pct is not None:
            x = self.pct.value(x, ts_ns)
        if x != x:
            return x, False, False
        f = OPS[self.op]
        hit = f(x, self.value)
        rearm = self.rearm
        return x, hit, (hit if rearm is None else f(x, rearm))

    def describe(self, x: float) -> str:
        return f"{self.key} {fmt_value(self.key, x)} {self.op} {fmt_value(self.key, self.value)}"


@dataclass(slots=True)
class Group:
    """``all`` (AND) or ``any`` (OR) of leaves and groups."""

    kind: str
    items: list[Leaf | Group]

    def leaves(self) -> list[Leaf]:
        out: list[Leaf] = []
        for it in self.items:
            out.extend(it.leaves() if isinstance(it, Group) else [it])
        return out

    def evaluate(self, signals: Mapping[str, float | None], ts_ns: int,
                 out: list[tuple[Leaf, tuple[float, bool, bool]]]) -> tuple[bool, bool]:
        """(hit, hit at the re-arm levels) of the group. Every leaf is evaluated (each updates its history
        whatever the others gave), in :meth:`leaves` order; ``(leaf, result)`` pairs are appended to ``out``."""
        every = self.kind == "all"
        h = s = every
        for it in self.items:
            if isinstance(it, Group):
                hi, si = it.evaluate(signals, ts_ns, out)
            else:
                r = it.evaluate(signals, ts_ns)
                out.append((it, r))
                hi, si = r[1], r[2]
            if every:
                h, s = h and hi, s and si
            else:
                h, s = h or hi, s or si
        return h, s

    def quick(self, signals: Mapping[str, float | None]) -> tuple[bool, bool]:
        """:meth:`evaluate`'s (hit, hit at the re-arm levels) for a group of plain threshold leaves
        (no history to update), without collecting the leaves' results."""
        every = self.kind == "all"
        h = s = every
        for it in self.items:
            if isinstance(it, Group):
                hi, si = it.quick(signals)
            else:
                x = signals.get(it.signal)
                x = _NAN if x is None else float(x)
                if x != x:
                    hi = si = False
                else:
                    f = OPS[it.op]
                    hi = f(x, it.value)
                    si = hi if it.rearm is None else f(x, it.rearm)
            if every:
                h, s = h and hi, s and si
            else:
                h, s = h or hi, s or si
        return h, s


@dataclass(slots=True)
class Fired:
    """A rule that fired: everything a TriggerEvent needs except the event id."""

    rule: str
    direction: str
    severity: str
    ts_ns: int
    inputs: dict[str, float | None]
    thresholds: dict[str, float | None]
    estimated_notional_usd: float | None
    reason: str


@dataclass(slots=True)
class Rule:
    """One declarative rule (see the module docstring); state: armed, last firing, leaf histories."""

    name: str
    description: str
    direction: str
    severity: str
    when: Group
    notional: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    cooldown_ns: int = 0
    critical: Group | None = None
    notional_min: float = 0.0
    armed: bool = True
    last_fired_ns: int | None = None
    n_refused: int = 0           # firings refused by the notional guard (diagnostic, not state)
    _plain: bool | None = field(default=None, repr=False, compare=False)  # no change/percentile leaf

    def notional_of(self, signals: Mapping[str, float | None]) -> float | None:
        """Sum of the notional signals (NaN/missing terms skipped); None if no finite term."""
        vals = []
        for k in self.notional:
            v = signals.get(k)
            if v is not None and math.isfinite(v):
                vals.append(float(v))
        return float(sum(vals)) if vals else None

    def notional_ok(self, notional: float | None) -> bool:
        """The guard: finite, with the direction's sign, at least ``notional_min`` in size."""
        if not self.notional:
            return True
        if notional is None or not math.isfinite(notional):
            return False
        signed = notional if self.direction == "buy" else -notional
        return signed > 0.0 and signed >= self.notional_min

    def _blocked(self, hit: bool, still: bool) -> bool:
        """This evaluation cannot fire: disarmed (re-armed once the condition has cleared), or not hit."""
        if not self.armed:
            if not still:
                self.armed = True
            return True
        return not hit

    def evaluate(self, signals: Mapping[str, float | None], ts_ns: int) -> Fired | None:
        """Evaluate once (updates histories); a Fired record exactly when the rule fires."""
        plain = self._plain
        if plain is None:
            plain = self._plain = all(lf.change is None and lf.pct is None for g in (self.when, self.critical)
                                      if g is not None for lf in g.leaves())
        if plain and self._blocked(*self.when.quick(signals)):
            return None  # nothing to update: the condition alone said this cannot fire (the usual case)
        res: list[tuple[Leaf, tuple[float, bool, bool]]] = []
        hit, still = self.when.evaluate(signals, ts_ns, res)
        crit = False
        if self.critical is not None:
            crit = self.critical.evaluate(signals, ts_ns, [])[0]
        if self._blocked(hit, still):
            return None
        if self.last_fired_ns is not None and ts_ns - self.last_fired_ns < self.cooldown_ns:
            return None
        notional = self.notional_of(signals)
        if not self.notional_ok(notional):
            self.n_refused += 1
            return None
        self.armed = False
        self.last_fired_ns = ts_ns
        inputs: dict[str, float | None] = {}
        thresholds: dict[str, float | None] = {}
        parts = []
        for lf, (x, h, _) in res:
            inputs[lf.key] = None if x != x else x
            thresholds[f"{lf.key}_{_OP_WORD[lf.op]}"] = lf.value
            if lf.rearm is not None:
                thresholds[f"{lf.key}_rearm"] = lf.rearm
            if h:
                parts.append(lf.describe(x))
        for k in self.context:
            v = signals.get(k)
            inputs[k] = None if v is None or v != v else float(v)
        terms = []
        for k in self.notional:
            v = signals.get(k)
            inputs[f"notional:{k}"] = x = None if v is None or not math.isfinite(v) else float(v)
            terms.append(f"{k} {fmt_value('x_usd', x)}")
        reason = f"{self.description}: " + "; ".join(parts)
        if self.notional:
            thresholds["notional_usd_min" if self.direction == "buy" else "notional_usd_max"] = (
                self.notional_min if self.direction == "buy" else -self.notional_min)
            reason += f"; est. {fmt_value('x_usd', notional)} = " + " + ".join(terms)
        return Fired(self.name, self.direction, "critical" if crit else self.severity, ts_ns,
                     inputs, thresholds, notional, reason)

    def reset(self) -> None:
        """Re-arm regardless of the condition."""
        self.armed = True

    def _stateful(self) -> dict[str, Any]:
        out = {}
        groups = [self.when] + ([self.critical] if self.critical is not None else [])
        for gi, g in enumerate(groups):
            for i, lf in enumerate(g.leaves()):
                obj = lf.change or lf.pct
                if obj is not None:
                    out[f"{gi}:{i}:{lf.key}:{lf.op}"] = obj
        return out

    def to_state(self) -> dict[str, Any]:
        return {"armed": self.armed, "last_fired_ns": self.last_fired_ns,
                "leaves": {k: o.to_state() for k, o in self._stateful().items()}}

    def load_state(self, d: Mapping[str, Any]) -> None:
        self.armed = bool(d["armed"])
        self.last_fired_ns = d["last_fired_ns"]
        st = self._stateful()
        for k, v in d.get("leaves", {}).items():
            if k in st:
                try:
                    st[k].load(v)
                except (KeyError, TypeError, ValueError):
                    pass  # a changed leaf definition starts a fresh history


class RuleSet:
    """Rules loaded from TOML; ``evaluate(signals, ts_ns)`` -> list of :class:`Fired`.

    >>> rs = RuleSet.from_toml(\'\'\'
    ... [[rule]]
    ... name = "vol_collapse"
    ... description = "VIX collapse"
    ... direction = "buy"
    ... severity = "warning"
    ... notional = "flow_usd"
    ... when.all = [{ signal = "vix_change_ratio", op = "<=", value = -0.15, rearm = -0.10 }]
    ... \'\'\')
    >>> [len(rs.evaluate({"vix_change_ratio": x, "flow_usd": 5e10}, t)) for t, x in enumerate([-0.2, -0.12, -0.05, -0.16])]
    [1, 0, 0, 1]
    >>> rs.evaluate({"vix_change_ratio": -0.3}, 9) == [] and rs.evaluate({"vix_change_ratio": 0.0}, 10) == []
    True
    """

    def __init__(self, rules: list[Rule], source: str = "<rules>") -> None:
        self.rules = rules
        self.source = source

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def signals_used(self) -> set[str]:
        """Every signal name any rule reads."""
        out: set[str] = set()
        for r in self.rules:
            out |= {lf.signal for lf in r.when.leaves()} | set(r.notional) | set(r.context)
            if r.critical is not None:
                out |= {lf.signal for lf in r.critical.leaves()}
        return out

    def refused(self) -> dict[str, int]:
        """Firings refused by the notional guard, per rule (since load; diagnostic)."""
        return {r.name: r.n_refused for r in self.rules}

    def evaluate(self, signals: Mapping[str, float | None], ts_ns: int) -> list[Fired]:
        """Evaluate every rule on one snapshot of signals at event time ts_ns (UTC ns)."""
        out = []
        for r in self.rules:
            f = r.evaluate(signals, ts_ns)
            if f is not None:
                out.append(f)
        return out

    def to_state(self) -> dict[str, Any]:
        return {r.name: r.to_state() for r in self.rules}

    def load_state(self, d: Mapping[str, Any]) -> None:
        """Restore by rule name; rules not in ``d`` keep a fresh state (hot reload keeps the rest)."""
        for r in self.rules:
            if r.name in d:
                r.load_state(d[r.name])

    @classmethod
    def default(cls, known_signals: Collection[str] | None = None) -> RuleSet:
        """The packaged ``streamer/rules/default.toml``."""
        return cls.from_toml(DEFAULT_RULES_PATH, known_signals)

    @classmethod
    def from_toml(cls, text_or_path: str | Path, known_signals: Collection[str] | None = None) -> RuleSet:
        """Parse and validate a rule file (path or TOML text); raises RuleError (source, rule, field).

        ``known_signals``: if given, a rule reading any other signal name is rejected. The engine passes
        the signal catalogue (``streamer.core.signals``, expanded by ``streamer.engine.known_signals``);
        None checks nothing (tests over made-up signals).
        """
        s = str(text_or_path)
        if isinstance(text_or_path, Path) or ("\n" not in s and s.endswith(".toml")):
            source = s
            try:
                text = Path(text_or_path).read_text()
            except OSError as exc:
                raise RuleError(source, None, None, f"cannot read: {exc}") from None
        else:
            source, text = "<text>", s
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(source, None, None, f"invalid TOML: {exc}") from None
        extra = set(doc) - {"version", "rule"}
        if extra:
            raise RuleError(source, None, sorted(extra)[0], "unknown top-level key (expected version, rule)")
        if doc.get("version", 1) != 1:
            raise RuleError(source, None, "version", f"unsupported version {doc.get('version')!r}")
        raw = doc.get("rule", [])
        if not isinstance(raw, list):
            raise RuleError(source, None, "rule", "expected [[rule]] tables")
        rules, seen = [], set()
        for i, rd in enumerate(raw):
            r = _parse_rule(source, i, rd, known_signals)
            if r is None:
                continue
            if r.name in seen:
                raise RuleError(source, r.name, "name", "duplicate rule name")
            seen.add(r.name)
            rules.append(r)
        return cls(rules, source)


_RULE_KEYS = {"name", "description", "direction", "severity", "notional", "notional_min", "context",
              "cooldown", "when", "critical", "enabled"}
_LEAF_KEYS = {"signal", "op", "value", "rearm", "change_over", "percentile_window", "sample_every"}


def _parse_rule(source: str, i: int, rd: Any, known: Collection[str] | None) -> Rule | None:
    if not isinstance(rd, dict):
        raise RuleError(source, f"#{i}", None, "a rule must be a table")
    name = rd.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RuleError(source, f"#{i}", "name", f"must match {_NAME_RE.pattern}, got {name!r}")

    def err(fld: str, detail: str) -> RuleError:
        return RuleError(source, name, fld, detail)

    extra = set(rd) - _RULE_KEYS
    if extra:
        raise err(sorted(extra)[0], f"unknown field (allowed: {', '.join(sorted(_RULE_KEYS))})")
    enabled = rd.get("enabled", True)
    if not isinstance(enabled, bool):
        raise err("enabled", "must be true or false")
    desc = rd.get("description", name)
    if not isinstance(desc, str):
        raise err("description", "must be a string")
    direction = rd.get("direction")
    if direction not in DIRECTIONS:
        raise err("direction", f"must be one of {DIRECTIONS}, got {direction!r}")
    severity = rd.get("severity", "warning")
    if severity not in SEVERITIES:
        raise err("severity", f"must be one of {SEVERITIES}, got {severity!r}")

    def names(fld: str) -> tuple[str, ...]:
        v = rd.get(fld, ())
        v = (v,) if isinstance(v, str) else v
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
            raise err(fld, "must be a signal name or a list of signal names")
        for x in v:
            if known is not None and x not in known:
                raise err(fld, _unknown(x, known))
        return tuple(v)

    notional, context = names("notional"), names("context")
    notional_min = rd.get("notional_min", 0.0)
    if not _num(notional_min) or notional_min < 0:
        raise err("notional_min", f"must be a finite number >= 0 (USD), got {notional_min!r}")
    if "notional_min" in rd and not notional:
        raise err("notional_min", "only with a notional")
    try:
        cooldown = parse_duration_ns(rd.get("cooldown", 0))
    except ValueError as exc:
        raise err("cooldown", str(exc)) from None
    if "when" not in rd:
        raise err("when", "missing (a table with `all` or `any`, or a single leaf)")
    when = _parse_node(rd["when"], "when", err, known)
    crit = _parse_node(rd["critical"], "critical", err, known) if "critical" in rd else None
    if not enabled:
        return None
    return Rule(name, desc, direction, severity, when, notional, context, cooldown, crit, float(notional_min))


def _parse_node(node: Any, path: str, err: Any, known: Collection[str] | None) -> Group:
    """A group (``{all = [...]}`` / ``{any = [...]}``) or a single leaf, returned as a Group."""
    if not isinstance(node, dict):
        raise err(path, "must be a table")
    kinds = [k for k in ("all", "any") if k in node]
    if kinds:
        if len(kinds) != 1 or len(node) != 1:
            raise err(path, "a group has exactly one key, `all` or `any`")
        k = kinds[0]
        items = node[k]
        if not isinstance(items, list) or not items:
            raise err(f"{path}.{k}", "must be a non-empty array")
        out: list[Leaf | Group] = []
        for j, it in enumerate(items):
            sub = f"{path}.{k}[{j}]"
            if isinstance(it, dict) and ("all" in it or "any" in it):
                out.append(_parse_node(it, sub, err, known))
            else:
                out.append(_parse_leaf(it, sub, err, known))
        return Group(k, out)
    return Group("all", [_parse_leaf(node, path, err, known)])


def _unknown(name: str, known: Collection[str]) -> str:
    """Why a signal name is refused, with the closest catalogued names."""
    near = difflib.get_close_matches(name, list(known), n=3)
    return (f"unknown signal {name!r} (not in the signal catalogue, streamer/core/signals.py)"
            + (f"; did you mean {', '.join(map(repr, near))}?" if near else ""))


def _num(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _parse_leaf(d: Any, path: str, err: Any, known: Collection[str] | None) -> Leaf:
    if not isinstance(d, dict):
        raise err(path, "a condition must be a table")
    extra = set(d) - _LEAF_KEYS
    if extra:
        raise err(f"{path}.{sorted(extra)[0]}", f"unknown field (allowed: {', '.join(sorted(_LEAF_KEYS))})")
    sig = d.get("signal")
    if not isinstance(sig, str) or not sig:
        raise err(f"{path}.signal", "missing or not a string")
    if known is not None and sig not in known:
        raise err(f"{path}.signal", _unknown(sig, known))
    op = d.get("op")
    if op not in OPS:
        raise err(f"{path}.op", f"must be one of {sorted(OPS)}, got {op!r}")
    if not _num(d.get("value")):
        raise err(f"{path}.value", f"must be a finite number, got {d.get('value')!r}")
    value = float(d["value"])
    rearm = d.get("rearm")
    if rearm is not None:
        if not _num(rearm):
            raise err(f"{path}.rearm", f"must be a finite number, got {rearm!r}")
        rearm = float(rearm)
        if OPS[op](rearm, value) and rearm != value:
            raise err(f"{path}.rearm", f"{rearm} must lie on the clear side of {value} for {op}")
    if "change_over" in d and "percentile_window" in d:
        raise err(path, "use either change_over or percentile_window, not both")
    change = pct = None
    label = ""
    if "change_over" in d:
        try:
            per = parse_duration_ns(d["change_over"])
        except ValueError as exc:
            raise err(f"{path}.change_over", str(exc)) from None
        if per <= 0:
            raise err(f"{path}.change_over", "must be > 0")
        change = _Change(per)
        label = f"{sig}_change_{d['change_over']}".replace(" ", "")
    elif "percentile_window" in d:
        w = d["percentile_window"]
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise err(f"{path}.percentile_window", f"must be a positive integer (samples), got {w!r}")
        try:
            smp = parse_duration_ns(d.get("sample_every", "1d"))
        except ValueError as exc:
            raise err(f"{path}.sample_every", str(exc)) from None
        if smp <= 0:
            raise err(f"{path}.sample_every", "must be > 0")
        if not 0.0 <= value <= 1.0:
            raise err(f"{path}.value", "a percentile rank is between 0 and 1")
        pct = _Percentile(w, smp)
        label = f"{sig}_pct_rank_{w}"
    elif "sample_every" in d:
        raise err(f"{path}.sample_every", "only with percentile_window")
    return Leaf(sig, op, value, rearm, change, pct, label)
