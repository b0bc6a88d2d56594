"""`streamer backtest` end to end on the real daily files: events, schema, PNG, and the 2024-11-06 firing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamer.cli import main
from streamer.schemas import event_id, parse_trigger_event

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not (DATA / "spx_daily_ohlc_2015-01-02_2026-02-27.csv").exists():
        if CI:
            pytest.fail("real data missing under CI")
        pytest.skip("real data not present")
    return DATA


def test_backtest_command_fires_on_election_day(data_dir, tmp_path, capsys):
    ev, png = tmp_path / "ev.jsonl", tmp_path / "r.png"
    rc = main(["backtest", "--data-dir", str(data_dir), "--from", "2024-01-01", "--to", "2024-12-31",
               "--events", str(ev), "--png", str(png), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "events per rule per year" in out and "largest |systematic flow| days" in out
    events = [parse_trigger_event(line) for line in ev.read_bytes().splitlines()]
    assert events, "no events in 2024"
    for e in events:   # deterministic ids, same schema as the live topic
        assert e.event_id == event_id(e.rule, e.underlying, e.ts_ns, e.input_seq)
    nov6 = {e.rule: e for e in events if e.ts_ns == 1730926800 * 10**9}
    assert "election_vol_collapse" in nov6
    e = nov6["election_vol_collapse"]
    assert e.direction == "buy" and e.severity == "critical"
    assert abs(e.inputs["vix_change_ratio"] - (16.27 / 20.49 - 1)) < 1e-12
    assert e.inputs["vix_change_pct_rank"] < 0.005
    assert "leveraged_etf_close_buying" in nov6
    assert png.stat().st_size > 50_000 and png.read_bytes()[:4] == b"\x89PNG"
    # rare on ordinary days: the vol-collapse rule fires a handful of times in 2024
    assert sum(e.rule == "election_vol_collapse" for e in events) <= 5


def test_backtest_rejects_bad_rules_file(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "x"\ndirection = "buy"\nwhen = { signal = "no_such_signal", op = ">", value = 1 }\n')
    rc = main(["backtest", "--data-dir", str(data_dir), "--rules", str(bad), "--png", "", "--no-progress",
               "--events", str(tmp_path / "e.jsonl")])
    assert rc == 2
    assert "rule 'x'" in capsys.readouterr().err
