"""RuleSet: parsing, validation messages, semantics (hysteresis, cooldown, change, percentile), state."""
from __future__ import annotations

import math

import numpy as np
import pytest

from streamer.core.flows import FlowBook
from streamer.core.rules import RuleError, RuleSet
from streamer.engine import known_signals
from streamer.settings import Settings

DAY = 86_400 * 10**9

ONE = '''
[[rule]]
name = "r"
direction = "buy"
notional = ["a_usd", "b_usd"]
cooldown = "4d"
when.any = [
  { signal = "x_ratio", op = "<=", value = -0.15, rearm = -0.10 },
  { all = [ { signal = "y", op = ">", value = 1 }, { signal = "z", op = ">", value = 1 } ] },
]
'''


def test_hysteresis_cooldown_and_and_or():
    rs = RuleSet.from_toml(ONE)
    seq = [({"x_ratio": -0.2}, 0, 1), ({"x_ratio": -0.12}, 1, 0), ({"x_ratio": -0.05}, 2, 0),
           ({"x_ratio": -0.2}, 3, 0),          # re-armed but inside the 4-day cooldown
           ({"x_ratio": 0.0}, 4, 0), ({"y": 2, "z": 2}, 5, 1),   # AND branch of the OR
           ({"y": 2}, 6, 0)]
    for sig, day, n in seq:
        fired = rs.evaluate({**sig, "a_usd": 1e9, "b_usd": float("nan")}, day * DAY)
        assert len(fired) == n, (sig, day)
    f = RuleSet.from_toml(ONE).evaluate({"x_ratio": -0.2, "a_usd": 1e9, "b_usd": 2e9}, 0)[0]
    assert f.estimated_notional_usd == 3e9 and f.direction == "buy" and f.severity == "warning"
    assert f.inputs["x_ratio"] == -0.2 and f.thresholds["x_ratio_max"] == -0.15 and f.thresholds["x_ratio_rearm"] == -0.10
    assert "x_ratio -20.0% <= -15.0%" in f.reason and "\n" not in f.reason


def test_change_over_against_batch():
    rs = RuleSet.from_toml('''
[[rule]]
name = "chg"
direction = "buy"
when = { signal = "s", change_over = "5d", op = ">=", value = 3.0, rearm = 1.0 }
''')
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.normal(size=200))
    leaf = rs.rules[0].when.items[0]
    for i, x in enumerate(xs):
        rs.evaluate({"s": float(x)}, i * DAY)
        got = leaf.change.value(float(x), i * DAY)   # re-evaluating the same instant is idempotent
        ref = x - xs[i - 5] if i >= 5 else float("nan")
        assert (got == ref) or (got != got and ref != ref)


def test_percentile_against_batch():
    rs = RuleSet.from_toml('''
[[rule]]
name = "pct"
direction = "buy"
when = { signal = "s", percentile_window = 50, op = "<=", value = 0.02 }
''')
    rng = np.random.default_rng(2)
    xs = rng.normal(size=300)
    leaf = rs.rules[0].when.items[0]
    fired_days = []
    for i, x in enumerate(xs):
        # several intraday evaluations; the day's last value is what enters the history
        rs.evaluate({"s": float(x) + 5}, i * DAY + 1)
        f = rs.evaluate({"s": float(x)}, i * DAY + 2)
        past = xs[max(0, i - 50): i]
        if len(past) >= 20:
            assert leaf.pct.hist.pct_rank(float(x)) == np.mean(past <= x)
        fired_days += [i] * len(f)
    assert fired_days, "a 2% percentile should fire sometimes in 300 draws"


@pytest.mark.parametrize("text,where", [
    ('[[rule]]\nname = "a"\ndirection = "up"\nwhen = { signal = "s", op = ">", value = 1 }', "field 'direction'"),
    ('[[rule]]\nname = "a"\ndirection = "buy"\nwhen = { signal = "s", op = "=>", value = 1 }', "field 'when.op'"),
    ('[[rule]]\nname = "a"\ndirection = "buy"\nwhen = { signal = "s", op = ">", value = "1" }', "field 'when.value'"),
    ('[[rule]]\nname = "a"\ndirection = "buy"\nwhen = { signal = "s", op = "<=", value = -0.15, rearm = -0.2 }', "rearm"),
    ('[[rule]]\nname = "a"\ndirection = "buy"\ncooldown = "3 days"\nwhen = { signal = "s", op = ">", value = 1 }', "field 'cooldown'"),
    ('[[rule]]\nname = "a"\ndirection = "buy"\ncolour = 1\nwhen = { signal = "s", op = ">", value = 1 }', "field 'colour'"),
    ('[[rule]]\nname = "a"\ndirection = "buy"\nwhen = { signal = "nope", op = ">", value = 1 }', "unknown signal"),
    ('[[rule]]\nname = "a"\ndirection = "buy"\nwhen = { signal = "s", op = ">", value = 1 }\n'
     '[[rule]]\nname = "a"\ndirection = "buy"\nwhen = { signal = "s", op = ">", value = 1 }', "duplicate"),
    ('[[rule]\nname = "a"', "invalid TOML"),
])
def test_invalid_files_are_rejected_with_location(text, where):
    with pytest.raises(RuleError) as ei:
        RuleSet.from_toml(text, known_signals={"s"})
    assert where in str(ei.value)
    assert str(ei.value).startswith("<text>")


def test_file_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[[rule]]\nname = "a"\ndirection = "buy"\n')
    with pytest.raises(RuleError, match=r"bad.toml: rule 'a': field 'when'"):
        RuleSet.from_toml(p)


def test_default_rules_valid_against_the_signal_catalogue():
    known = set(known_signals(Settings()))
    assert set(FlowBook().signal_names()) <= known     # every flow-model signal is catalogued
    rs = RuleSet.default(known)
    assert {"election_vol_collapse", "vol_control_buying", "risk_parity_equity_shift", "cta_buy_signal",
            "leveraged_etf_close_buying", "vol_control_releveraging"} <= set(rs.names)
    assert rs.signals_used() <= known


def test_state_roundtrip_and_hot_reload_keeps_state():
    rs = RuleSet.from_toml(ONE)
    rs.evaluate({"x_ratio": -0.2}, 0)
    rs2 = RuleSet.from_toml(ONE)
    rs2.load_state(rs.to_state())
    assert rs2.evaluate({"x_ratio": -0.3}, 10 * DAY) == []   # still disarmed: not cleared yet
    assert rs2.to_state() == rs.to_state() | {"r": rs2.to_state()["r"]}


GUARD = '''
[[rule]]
name = "b"
direction = "buy"
notional = ["a_usd", "b_usd"]
when = { signal = "x", op = ">", value = 0, rearm = -1 }
[[rule]]
name = "s"
direction = "sell"
notional = "a_usd"
notional_min = 2e9
when = { signal = "x", op = ">", value = 0, rearm = -1 }
'''


@pytest.mark.parametrize("a,b,buy,sell", [
    (-1e9, 0.5e9, False, False),                      # sum -0.5bn: no BUY; |sum| < 2bn: no SELL
    (-3e9, float("nan"), False, True),                # NaN term skipped: -3bn
    (float("nan"), float("nan"), False, False),       # no finite term: neither
    (float("inf"), 1e9, False, False),                # non-finite terms are skipped: b alone for the BUY
    (0.0, 0.0, False, False),                         # zero is not a BUY
    (1e9, 0.0, True, False),
])
def test_notional_guard_refuses_wrong_sign_and_non_finite(a, b, buy, sell):
    rs = RuleSet.from_toml(GUARD)
    got = {f.rule: f for f in rs.evaluate({"x": 1.0, "a_usd": a, "b_usd": b}, 0)}
    if a == float("inf"):
        buy = True    # inf is dropped from the sum, b = +1bn remains
    assert ("b" in got) == buy and ("s" in got) == sell
    for f in got.values():
        n = f.estimated_notional_usd
        assert n is not None and math.isfinite(n)
        assert (n > 0) if f.direction == "buy" else (n <= -2e9)
    refused = rs.refused()
    assert refused["b"] == (0 if buy else 1) and refused["s"] == (0 if sell else 1)


def test_refused_rule_stays_armed_and_fires_once_the_notional_has_the_right_sign():
    rs = RuleSet.from_toml(GUARD)
    assert rs.evaluate({"x": 1.0, "a_usd": -1e9, "b_usd": 0.0}, 0) == []   # BUY refused, SELL below its min
    assert rs.rules[0].armed
    f = [f for f in rs.evaluate({"x": 1.0, "a_usd": 4e9, "b_usd": 1e9}, 2) if f.rule == "b"]
    assert len(f) == 1 and f[0].estimated_notional_usd == 5e9
    # the trigger names its terms and the guard level
    assert f[0].inputs["notional:a_usd"] == 4e9 and f[0].inputs["notional:b_usd"] == 1e9
    assert f[0].thresholds["notional_usd_min"] == 0.0
    assert "est. +$5.0bn = a_usd +$4.0bn + b_usd +$1.0bn" in f[0].reason


def test_notional_min_needs_a_notional_and_a_non_negative_number():
    base = '[[rule]]\nname = "a"\ndirection = "buy"\nwhen = { signal = "s", op = ">", value = 1 }\n'
    with pytest.raises(RuleError, match="only with a notional"):
        RuleSet.from_toml(base + "notional_min = 1e9\n")
    with pytest.raises(RuleError, match="notional_min"):
        RuleSet.from_toml(base + 'notional = "s"\nnotional_min = -1\n')


def test_default_rules_own_distinct_flows_and_guard_buys_by_construction():
    """No flow is the notional of two rules; every BUY rule has a notional and a leaf or
    notional_min that keeps it > 0 without the guard."""
    rs = RuleSet.default(known_signals(Settings()))
    owners: dict[str, str] = {}
    for r in rs.rules:
        assert r.notional, r.name
        for k in r.notional:
            assert k not in owners, (k, r.name, owners.get(k))
            owners[k] = r.name
        if r.direction == "buy":
            leaf_floor = [lf.value for lf in r.when.leaves() if (lf.signal,) == r.notional and lf.op in (">=", ">")]
            assert r.notional_min > 0 or any(v > 0 for v in leaf_floor), r.name
    vc = [r for r in rs.rules if r.name == "vol_control_releveraging"][0]
    assert all(k.startswith("flow_vol_control_after_lag_") for k in vc.notional)
    assert {lf.signal for lf in vc.when.leaves()} == set(vc.notional)     # the projection decides, not the VIX
    ev = [r for r in rs.rules if r.name == "election_vol_collapse"][0]
    assert set(ev.notional) == {"flow_dealer_vanna_usd", "flow_dealer_charm_usd"}


def test_plain_threshold_rules_take_the_quick_path_and_fire_as_the_full_evaluation():
    """Rules of plain thresholds (no change/percentile leaf) decide from the condition alone whether
    a firing is possible (``Group.quick``); the same rules forced through the full evaluation at every
    step fire the same records at the same steps with the same state (armed, last firing, refusals),
    over random signals with NaN, missing values, nested groups, a critical upgrade and a notional
    guard. A rule with a change leaf is never plain."""
    text = ONE + '''
[[rule]]
name = "s"
direction = "sell"
severity = "info"
critical = { any = [ { signal = "x_ratio", op = ">=", value = 0.3 }, { signal = "y", op = "<", value = -2 } ] }
notional = "a_usd"
notional_min = 1.0
context = ["z"]
when.all = [
  { signal = "x_ratio", op = ">=", value = 0.2, rearm = 0.1 },
  { any = [ { signal = "y", op = "<", value = 0 }, { signal = "z", op = ">=", value = 2, rearm = 1 } ] },
]
[[rule]]
name = "c"
direction = "buy"
when = { signal = "y", change_over = "1d", op = ">", value = 0.5 }
'''
    quick, full = RuleSet.from_toml(text), RuleSet.from_toml(text)
    for r in full.rules:
        r._plain = False
    rng = np.random.default_rng(2)
    fired = 0
    for step in range(3000):
        sig = {}
        for k in ("x_ratio", "y", "z", "a_usd", "b_usd"):
            u = rng.random()
            if u < 0.9:
                sig[k] = float(rng.normal(0.0, 1.0 if k != "x_ratio" else 0.2))
            elif u < 0.95:
                sig[k] = math.nan
        ts = step * DAY // 3
        a, b = quick.evaluate(sig, ts), full.evaluate(sig, ts)
        assert a == b, step
        assert quick.to_state() == full.to_state() and quick.refused() == full.refused(), step
        fired += len(a)
    assert [r._plain for r in quick.rules] == [True, True, False]
    assert fired > 50
