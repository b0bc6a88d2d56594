"""`streamer chain` on every Cboe quotedata file in the shared data folder.

Checks: JSON structure and finiteness; the printed object is exactly ``chain_report.report`` (the
command holds no logic); the report's IVs and exposures are the live engine's (worker path:
``engine.run_offline`` on the records ``--replay`` publishes) and equal slow references: each IV
``iv.implied_vol_batch`` against its expiry's put–call-parity forward, exposures
``chain.exposures_batch`` on those IVs; the VIX the report takes from the reference ``vix.vix_batch``
equals the live ``ChainBook.vix``; VIX and VIX9D against Cboe's published closes for the full SPX
chains; the replay mapping passes the edge validation of the live path.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, require_shared_data

from streamer import chain_report, cli, schemas
from streamer.cboe_csv import combine, ny_ts_ns, read_quotedata, replay_quotes
from streamer.core import chain, iv, vix
from streamer.core.calendar import in_regular_session
from streamer.engine import run_offline
from streamer.history import read_daily
from streamer.settings import Settings

DATA = SHARED_DATA
CHAINS = require_shared_data(DATA / "option_chains")

FILES = sorted(p.name for p in CHAINS.glob("*.csv"))
JAN_FEB = ["spx_quotedata_2025-01-06_close_janexp.csv", "spx_quotedata_2025-01-06_close_febexp.csv"]
CASES = [[f] for f in FILES] + [JAN_FEB]
RATE, DIV = 0.05, 0.013

TOP_NUMBERS = ["spot", "gex_usd_per_pct", "delta_exposure_usd", "vanna_usd_per_vol_pt",
               "charm_usd_per_day"]
TOP_KEYS = TOP_NUMBERS + ["forward", "atm_iv", "vix_index", "vix_reason", "vix9d_index",
                          "vix9d_reason", "vix_wing_truncated", "vix_wing_bound", "vix9d_wing_truncated",
                          "vix9d_wing_bound", "gamma_flip", "call_wall", "put_wall",
                          "abs_gamma_strike", "zero_dte", "iv", "expiries", "asof"]
EXPIRY_KEYS = ["expiry", "settlement", "days", "forward", "atm_iv", "gex_usd_per_pct",
               "vanna_usd_per_vol_pt", "charm_usd_per_day", "open_interest", "n_contracts"]


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert cli.main(["chain", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def outputs() -> dict[str, dict]:
    """CLI output per case, computed once (the CLI prints exactly what report returns)."""
    out = {}
    for case in CASES:
        snap = chain_report.load([CHAINS / f for f in case])
        out["+".join(case)] = json.loads(json.dumps(chain_report.report(snap, RATE, DIV),
                                                    allow_nan=False))
    return out


def test_cli_prints_exactly_the_report(capsys: pytest.CaptureFixture, outputs: dict) -> None:
    for case in (["spy_quotedata_2025-09-25_close.csv"], JAN_FEB):
        got = run_cli(capsys, *(str(CHAINS / f) for f in case), "--rate", str(RATE),
                      "--div-yield", str(DIV))
        assert got == outputs["+".join(case)]


@pytest.mark.parametrize("case", CASES, ids=["+".join(c) for c in CASES])
def test_structure_and_finiteness(case: list[str], outputs: dict) -> None:
    d = outputs["+".join(case)]
    for k in TOP_KEYS:
        assert k in d, k
    for k in TOP_NUMBERS:
        assert isinstance(d[k], float) and math.isfinite(d[k]), k
    for name, reason in (("vix_index", "vix_reason"), ("vix9d_index", "vix9d_reason")):
        assert (d[name] is None) == isinstance(d[reason], str), (d[name], d[reason])
        if d[name] is not None:
            assert 5.0 < d[name] < 100.0
    assert d["forward"] is not None and abs(d["forward"] / d["spot"] - 1.0) < 0.02
    assert d["atm_iv"] is not None and 0.02 < d["atm_iv"] < 1.5
    assert d["engine"] is True
    for k in ("call_wall", "put_wall", "abs_gamma_strike"):
        assert d[k] is not None and 0.5 * d["spot"] < d[k] < 1.5 * d["spot"], k
    if d["gamma_flip"] is not None:
        assert 0.8 * d["spot"] <= d["gamma_flip"] <= 1.2 * d["spot"]
    snap = chain_report.load([CHAINS / f for f in case])
    assert d["n_contracts"] == len(snap)
    assert d["iv"]["n_ok"] + d["iv"]["n_missing"] == len(snap)
    assert sum(d["iv"]["missing_by_reason"].values()) == d["iv"]["n_missing"]
    assert set(d["iv"]["missing_by_reason"]) <= {r.name for r in iv.IVReason} | {"NO_IV"}
    assert d["open_interest"]["calls"] + d["open_interest"]["puts"] == int(
        np.nansum(snap.open_interest))
    exps = d["expiries"]
    assert [e["expiry_ts_ns"] for e in exps] == sorted(set(snap.expiry_ts_ns.tolist()))
    assert sum(e["n_contracts"] for e in exps) == len(snap)
    assert math.isclose(sum(e["gex_usd_per_pct"] for e in exps), d["gex_usd_per_pct"],
                        rel_tol=1e-9, abs_tol=1e-6 * abs(d["gex_usd_per_pct"]))
    for e in exps:
        for k in EXPIRY_KEYS:
            assert k in e, k
        assert e["settlement"] in ("AM", "PM")
        if e["days"] <= 0:       # settled: no forward, no exposure
            assert e["forward"] is None and e["gex_usd_per_pct"] == 0.0
        for k in ("gex_usd_per_pct", "vanna_usd_per_vol_pt", "charm_usd_per_day"):
            assert isinstance(e[k], float) and math.isfinite(e[k])


def reference_ivs(s, rate: float, div: float) -> np.ndarray:
    """Slow reference of the worker's IV path: per expiry, the parity forward over the mids the book takes
    (0 < bid <= ask), then each quote's IV at the spot it implies, S = F e^{-(r-q)T}."""
    out = np.full(len(s), np.nan)
    with np.errstate(invalid="ignore"):
        mid = np.where((s.bid > 0) & (s.ask >= s.bid), 0.5 * (s.bid + s.ask), np.nan)
    for e in np.unique(s.expiry_ts_ns).tolist():
        t = (e - s.asof_ts_ns) / chain.NS_PER_YEAR
        if t <= 0:
            continue
        m = s.expiry_ts_ns == e
        ks = np.unique(s.strike[m])
        cols = {}
        for right in ("C", "P"):
            mm = m & (s.right == right)
            cols[right] = np.full(ks.size, np.nan)
            cols[right][np.searchsorted(ks, s.strike[mm])] = mid[mm]
        f, _ = chain.forward_from_parity(ks, cols["C"], cols["P"], t, rate)
        spot = f * math.exp(-(rate - div) * t) if math.isfinite(f) else s.spot
        idx = np.flatnonzero(m & np.isfinite(mid))
        out[idx], _ = iv.implied_vol_batch(mid[idx], spot, s.strike[idx], t, rate, div, s.right[idx] == "C")
    return out


@pytest.mark.parametrize("case", CASES, ids=["+".join(c) for c in CASES])
def test_report_equals_slow_references(case: list[str], outputs: dict) -> None:
    d = outputs["+".join(case)]
    snaps = [read_quotedata(CHAINS / f) for f in case]
    s = combine(snaps) if len(snaps) > 1 else snaps[0]
    got, why = chain_report.contract_ivs(s, RATE, DIV)
    ref = reference_ivs(s, RATE, DIV)
    live = s.expiry_ts_ns > s.asof_ts_ns
    assert np.array_equal(np.isfinite(got), np.isfinite(ref) & live)
    ok = np.isfinite(got)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-9)
    assert d["iv"]["n_ok"] == int(ok.sum()) and d["iv"]["missing_by_reason"] == why
    # spot: the file's Last for quotes of a session or its close; overnight (GTH) quotes: the parity spot
    overnight = not in_regular_session(s.asof_ts_ns, "SPXW")
    assert d["spot_source"] == ("parity" if overnight else "last") and (overnight or d["spot"] == s.spot)
    s = replace(s, spot=d["spot"])
    e = chain.exposures_batch(s.expiry_ts_ns, s.strike, s.right == "C", got, s.open_interest, s.spot,
                              s.asof_ts_ns, RATE, DIV)
    for k, v in (("gex_usd_per_pct", e.total.gex_usd_per_pct), ("delta_exposure_usd", e.total.dex_usd),
                 ("vanna_usd_per_vol_pt", e.total.vanna_usd_per_vol_pt),
                 ("charm_usd_per_day", e.total.charm_usd_per_day)):
        assert d[k] == pytest.approx(v, rel=1e-9), k
    assert d["zero_dte"]["gex_usd_per_pct"] == pytest.approx(e.zero_dte.gex_usd_per_pct, rel=1e-9, abs=1e-3)
    for k in ("call_wall", "put_wall", "abs_gamma_strike"):
        assert d[k] == getattr(e, k), k
    ref_flip = e.gamma_flip
    assert (d["gamma_flip"] is None and math.isnan(ref_flip)) or d["gamma_flip"] == pytest.approx(ref_flip, rel=1e-9)
    # VIX: the report uses the slow reference; the live chain book on the same quotes must agree
    book = chain.ChainBook(s.spot, s.asof_ts_ns, chain.ChainConfig(rate=RATE, div_yield=DIV))
    book.apply_quotes(s.asof_ts_ns, s.expiry_ts_ns, s.strike, s.right == "C", s.bid, s.ask)
    for spec, key in ((vix.VIX, "vix_index"), (vix.VIX9D, "vix9d_index")):
        lv = book.vix(s.asof_ts_ns, spec)
        if lv.ok:
            assert d[key] == pytest.approx(lv.value, rel=1e-12)
        else:
            assert d[key] is None and d[key.replace("index", "reason")] == lv.reason
        # the truncated-wing flag and bound of the batch reference, as the live book computes them
        trunc, bound = d[key.replace("index", "wing_truncated")], d[key.replace("index", "wing_bound")]
        assert trunc is lv.wing_truncated
        assert bound == pytest.approx(lv.wing_bound, rel=1e-9, abs=1e-12)
        terms = d[key.replace("_index", "_terms")]
        assert trunc == any(t is not None and t["truncated"] for t in terms.values())
        if lv.ok:   # a value's bound only where a strip ended at the last listed strike
            assert (bound > 0) <= trunc
    # nearest unexpired expiry's parity forward, from valid mids
    near = next(x for x in d["expiries"] if x["days"] > 0 and x["forward"] is not None)
    m = s.expiry_ts_ns == near["expiry_ts_ns"]
    ks = np.unique(s.strike[m])
    mids = {}
    for right in ("C", "P"):
        mm = m & (s.right == right)
        col = np.full(ks.size, np.nan)
        col[np.searchsorted(ks, s.strike[mm])] = [chain.valid_mid(b, a) for b, a in zip(s.bid[mm], s.ask[mm])]
        mids[right] = col
    f, _ = chain.forward_from_parity(ks, mids["C"], mids["P"], (near["expiry_ts_ns"] - s.asof_ts_ns)
                                     / chain.NS_PER_YEAR, RATE)
    assert d["forward"] == f


@pytest.mark.parametrize("name", ["spx_quotedata_2023-09-14_close.csv", "spy_quotedata_2025-09-25_close.csv"])
def test_chain_command_agrees_with_the_live_engine(capsys: pytest.CaptureFixture, name: str) -> None:
    """The worker path on the records `streamer chain --replay` publishes (plus the spot print), fetched in
    other chunk sizes, gives the command's IVs and exposures: one IV path (parity forward per expiry, the
    worker's default rate and dividend yield)."""
    d = run_cli(capsys, str(CHAINS / name))
    st = Settings()
    assert d["engine"] and d["rate"] == st.rate and d["div_yield"] == st.div_yield
    snap = read_quotedata(CHAINS / name)
    _, snaps, engines = run_offline(chain_report.engine_records(snap), st, chunk=997, snapshot=True)
    v, book = snaps[-1].values, engines[snap.underlying].chain
    for k in ("gex_usd_per_pct", "delta_exposure_usd", "vanna_usd_per_vol_pt", "charm_usd_per_day",
              "gamma_flip", "call_wall", "put_wall", "abs_gamma_strike", "atm_iv"):
        assert d[k] == pytest.approx(v[k], rel=1e-12), k
    got, _ = chain_report.contract_ivs(snap)   # the command's path, default settings
    live = np.array([book.iv_of((e, k, r == "C")) for e, k, r in
                     zip(snap.expiry_ts_ns.tolist(), snap.strike.tolist(), snap.right.tolist())])
    assert np.array_equal(np.isnan(got), np.isnan(live))
    np.testing.assert_allclose(got[np.isfinite(got)], live[np.isfinite(live)], rtol=1e-12)
    for x in d["expiries"]:
        tot = book.by_expiry(x["expiry_ts_ns"])
        assert x["charm_usd_per_day"] == pytest.approx(tot.charm_usd_per_day, rel=1e-12, abs=1e-6)


def test_spx_2023_09_14_charm_with_the_workers_forward_and_dividend():
    """The worker's IV path (parity forward per expiry, q = 1.3%) vs the old one (the file's spot, q = 0):
    charm differed by an order of magnitude (−1.1 vs −16.4 $bn/day); the command now gives the engine's."""
    snap = read_quotedata(CHAINS / "spx_quotedata_2023-09-14_close.csv")
    d = chain_report.report(snap)
    old = iv.quote_ivs(snap.bid, snap.ask, snap.spot, snap.strike,
                       (snap.expiry_ts_ns - snap.asof_ts_ns) / chain.NS_PER_YEAR, Settings().rate, 0.0,
                       snap.right == "C").mid_iv
    e_old = chain.exposures_batch(snap.expiry_ts_ns, snap.strike, snap.right == "C", old, snap.open_interest,
                                  snap.spot, snap.asof_ts_ns, Settings().rate, 0.0)
    assert d["charm_usd_per_day"] < 5 * e_old.total.charm_usd_per_day < 0


# (date, files, rate ~ 1-month T-bill that day, tolerance in index points). The 2025-01-06 files
# were saved at 20:48/21:26 ET with overnight (GTH) quotes, not the 16:15 quotes Cboe used:
# VALIDATION.md (c) explains the residual, hence the wider tolerance there. The other two files were
# saved after the close (16:31 the same day; Sunday 10:52): by default they are valued at the 16:15
# close their quotes are from, no --asof needed; the GTH files are given the close with --asof.
VIX_CASES = [("2023-09-14", ["spx_quotedata_2023-09-14_close.csv"], 0.0555, 0.02, False),
             ("2024-01-05", ["spx_quotedata_2024-01-05_close.csv"], 0.0550, 0.02, False),
             ("2025-01-06", JAN_FEB, 0.0430, 0.30, True)]


@pytest.mark.parametrize("day,files,rate,tol,give_asof", VIX_CASES, ids=[c[0] for c in VIX_CASES])
def test_vix_vs_cboe_close(capsys: pytest.CaptureFixture, day: str, files: list[str], rate: float,
                           tol: float, give_asof: bool) -> None:
    official = {"vix_index": read_daily(DATA / "vix_daily_ohlc_1990-2026.csv").as_dict()[day]}
    vix9d_file = DATA / "cboe_VIX9D_History.csv"
    if vix9d_file.exists():
        official["vix9d_index"] = read_daily(vix9d_file).as_dict()[day]
    d = run_cli(capsys, *(str(CHAINS / f) for f in files), "--rate", str(rate),
                *(["--asof", f"{day}T16:15"] if give_asof else []))
    assert d["asof"].startswith(f"{day}T16:15:00")
    assert d["asof_basis"] == ("given" if give_asof else "the last close before the file's Date line "
                                                         "(no session was open then)")
    for key, close in official.items():
        assert d[key] is not None, d[key.replace("index", "reason")]
        assert abs(d[key] - close) <= tol, (key, d[key], close)


def test_near_atm_subset_gives_null_vix_with_reason(outputs: dict) -> None:
    d = outputs["spx_quotedata_2024-11-08_close_nearATM_novexp.csv"]
    assert d["vix_index"] is None and d["vix_reason"] == "no_bracketing_expiries"
    assert d["vix9d_index"] is None and d["vix9d_reason"] == "strip_truncated"


def test_asof_defaults_to_when_the_files_prices_are_from(outputs: dict) -> None:
    """Saved after the close (16:31, Sunday): the 16:15 close; saved in SPX's overnight GTH session
    (Monday 08:02, Monday 20:48): the Date line itself; SPY has no GTH: Thursday 21:05 -> its 16:15 close."""
    cases = {"spx_quotedata_2023-09-14_close.csv": (ny_ts_ns(2023, 9, 14, 16, 15), False),
             "spx_quotedata_2024-01-05_close.csv": (ny_ts_ns(2024, 1, 5, 16, 15), False),
             "spx_quotedata_2024-11-08_close_nearATM_novexp.csv": (ny_ts_ns(2024, 11, 11, 8, 2), True),
             "spx_quotedata_2025-01-06_close_febexp.csv": (ny_ts_ns(2025, 1, 6, 20, 48), True),
             "spy_quotedata_2025-09-25_close.csv": (ny_ts_ns(2025, 9, 25, 16, 15), False)}
    for name, (ts, same) in cases.items():
        d = outputs[name]
        assert d["asof_ts_ns"] == ts, name
        assert d["asof_basis"] == ("the file's Date line" if same else
                                   "the last close before the file's Date line (no session was open then)"), name


def test_vendor_iv_and_parity_spot(capsys: pytest.CaptureFixture) -> None:
    f = CHAINS / "spx_quotedata_2024-11-08_close_nearATM_novexp.csv"
    snap = read_quotedata(f)
    d = run_cli(capsys, str(f), "--rate", "0.046", "--div-yield", str(DIV), "--iv", "vendor", "--spot", "last")
    assert d["iv_source"] == "vendor" and d["iv"]["n_ok"] == int((snap.iv > 0).sum())
    e = chain.exposures_batch(snap.expiry_ts_ns, snap.strike, snap.right == "C",
                              np.where(snap.iv > 0, snap.iv, np.nan), snap.open_interest, snap.spot,
                              snap.asof_ts_ns, 0.046, DIV)
    assert d["gex_usd_per_pct"] == e.total.gex_usd_per_pct
    # Monday 08:02 quotes with Friday's close as 'Last': parity spot discounts the nearest forward
    p = run_cli(capsys, str(f), "--rate", "0.046", "--div-yield", str(DIV), "--spot", "parity")
    near = next(x for x in p["expiries"] if x["days"] > 0)
    assert p["spot"] == pytest.approx(near["forward"] * math.exp(-(0.046 - DIV) * near["days"] / 365),
                                      rel=1e-12)
    assert p["file_last"] == snap.spot and p["spot"] != snap.spot
    # ... which is what the default (auto) takes for these overnight quotes
    assert run_cli(capsys, str(f), "--rate", "0.046", "--div-yield", str(DIV)) == p


def test_help_explains_units_and_signs(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli.main(["chain", "--help"])
    text = capsys.readouterr().out
    for word in ("per 1% move", "per +1 vol point", "per calendar day", "long calls", "short puts",
                 "--replay", "--asof"):
        assert word in text, word


def test_bad_file_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("\nnot a chain\n")
    assert cli.main(["chain", str(bad)]) == 2
    assert "streamer chain:" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["spx_quotedata_2024-01-05_close.csv", "spy_quotedata_2025-09-25_close.csv"])
def test_replay_events_pass_edge_validation(name: str) -> None:
    snap = read_quotedata(CHAINS / name)
    skip: Counter = Counter()
    evs = list(chain_report.replay_events(snap, skip=skip))
    raw = Counter(k for k, _ in replay_quotes(snap))
    kinds = Counter(e.kind for e in evs)
    assert kinds["option_quote"] + kinds["open_interest"] + sum(skip.values()) == sum(raw.values())
    assert kinds["option_quote"] > 0 and kinds["open_interest"] > 0
    for e in evs:
        assert e.key == snap.underlying
        parse = schemas.parse_option_quote if e.kind == "option_quote" else schemas.parse_open_interest
        assert parse(schemas.encode(e.msg)) == e.msg
