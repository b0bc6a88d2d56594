"""The signal catalogue (streamer/core/signals.py) is exactly what the engine emits, and rule validation
refuses what it does not declare."""
from __future__ import annotations

import pytest

from streamer import schemas, simulator
from streamer.core import signals
from streamer.core.rules import RuleError, RuleSet
from streamer.engine import known_signals, load_rules, run_offline
from streamer.pipeline import INDEX, OPEN_INTEREST, QUOTES
from streamer.settings import Settings

KIND = {"index_tick": INDEX, "daily_close": INDEX, "option_quote": QUOTES, "open_interest": OPEN_INTEREST}


@pytest.fixture(scope="module")
def election():
    events = simulator.generate("election-2024", 3, preset="fast")
    return run_offline([(KIND[e.kind], e.key.encode(), schemas.encode(e.msg)) for e in events], Settings(),
                       snapshot=True)


def test_the_engine_emits_exactly_the_catalogue(election):
    """Every signal of every snapshot of the election scenario is declared, and every declared signal (expanded
    for the scenario's series and the flow configuration) is emitted."""
    _, snaps, engines = election
    emitted = set()
    for s in snaps:
        emitted |= set(s.values)
    declared = engines["SPX"].catalogue()
    assert sorted(emitted - set(declared)) == []
    assert sorted(set(declared) - emitted) == []
    # the scenario's series are the families the catalogue was expanded with
    assert {"vix9d_last", "vix3m_change_ratio", "spx_prev_close"} <= emitted
    # every emitted signal had a value at some point (no declared-but-dead name)
    seen = {k for s in snaps for k, v in s.values.items() if v is not None}
    assert "gex_usd_per_pct" in seen and "flow_dealer_vanna_usd" in seen


def test_every_declaration_has_a_unit_a_description_and_a_known_source():
    for s in signals.SIGNALS:
        assert s.unit and s.description, s.name
        assert s.source in ("series", "chain", "flows", "engine"), s.name
        assert set(s.placeholders) <= set(signals.PLACEHOLDERS), s.name
        if s.gauge is not None:
            assert s.gauge.metric.startswith("streamer_"), s.name
            for _, v in s.gauge.labels:
                assert "{" not in v or v.strip("{}") in s.placeholders, (s.name, v)


def test_expand_refuses_unknown_placeholders_and_duplicate_names():
    with pytest.raises(ValueError, match="placeholder"):
        signals.expand({"nonsense": ["x"]})
    twice = [signals.Signal("{index}_last", "u", "d", "series"), signals.Signal("spx_last", "u", "d", "series")]
    with pytest.raises(ValueError, match="declared twice"):
        signals.expand({"index": ["SPX"]}, twice)


RULE = '''
[[rule]]
name = "r"
description = "x"
direction = "buy"
severity = "info"
when = {{ signal = "{sig}", op = ">", value = 0 }}
'''


@pytest.mark.parametrize("sig", ["vix_change_ratio", "vix9d_last", "flow_vol_control_after_lag_1m_implied_usd",
                                 "cta_signal_3m_ratio", "flow_leveraged_etf_ndx_usd", "gex_0dte_usd_per_pct"])
def test_a_rule_on_a_catalogued_signal_loads(sig, tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULE.format(sig=sig))
    assert load_rules(Settings(rules_file=str(path))).names == ["r"]


@pytest.mark.parametrize("sig", ["vix_chnge_ratio", "vix_vix3m_ratio", "flow_vol_control_3y_usd", "gex_usd"])
def test_a_rule_on_an_unknown_signal_is_refused(sig, tmp_path):
    """By the engine's rule loader (worker start-up) and by a direct check against the expanded catalogue."""
    path = tmp_path / "rules.toml"
    path.write_text(RULE.format(sig=sig))
    with pytest.raises(RuleError, match="not in the signal catalogue"):
        load_rules(Settings(rules_file=str(path)))
    with pytest.raises(RuleError, match=f"unknown signal '{sig}'"):
        RuleSet.from_toml(RULE.format(sig=sig), known_signals(Settings()))
    # unchecked parsing (made-up signals in unit tests) still accepts it
    assert RuleSet.from_toml(RULE.format(sig=sig)).names == ["r"]


def test_the_packaged_rules_read_only_catalogued_signals():
    assert load_rules(Settings()).signals_used() <= set(known_signals(Settings()))
