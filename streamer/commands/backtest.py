"""`streamer backtest`: run the live engine (flow models, trigger rules) offline over real daily history.

Reads SPX, VIX (VIX9D/VIX3M if present), a bond proxy (TLT, else DGS10), the leveraged funds' underlyings
and the SPX option-chain snapshots (dealer figures: a chain dated the previous session, else a static proxy)
from a data folder (default /work/shared/data when it exists) or explicit files; writes the trigger
events as JSON lines (the live topic's schema), a PNG report, and prints a summary.
"""
from __future__ import annotations

import argparse

from streamer.core.dealer_reval import POSITIONINGS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backtest", help="run flows + trigger rules over daily history", description=__doc__)
    p.add_argument("--data-dir", help="folder with the daily CSV files (default: /work/shared/data if present)")
    p.add_argument("--spx", help="SPX daily CSV: a date column and a close (Yahoo, Nasdaq, Investing.com, Stooq, "
                   "Cboe, FRED, Bloomberg PX_LAST...; comma, semicolon or tab; dates ISO, M/D/YYYY (D/M/YYYY "
                   "if a day > 12), 'Nov 06, 2024'...; see streamer/history.py)")
    p.add_argument("--vix", help="VIX daily CSV (Cboe VIX_History.csv, FRED VIXCLS, Yahoo ^VIX...; the layouts "
                   "of --spx)")
    p.add_argument("--bond", help="bond proxy CSV: TLT closes or 10-year yields in percent (FRED DGS10); a "
                   "FRED/DGS/yield file or column name means yields, else pass --bond-input")
    p.add_argument("--bond-input", choices=["price", "yield_pct"],
                   help="how to read --bond (default: by file and column name)")
    p.add_argument("--vix9d", help="Cboe VIX9D history CSV")
    p.add_argument("--vix3m", help="Cboe VIX3M history CSV")
    p.add_argument("--gex", help="SqueezeMetrics DIX/GEX CSV (recorded, never mixed into the dealer figures: "
                   "their positioning is their own)")
    p.add_argument("--chain", action="append", help="Cboe quotedata chain snapshot(s) for the static dealer "
                   "proxy on days without a chain dated the previous session (default: the 2025-01-06 Jan+Feb "
                   "SPX chains in <data-dir>/option_chains)")
    p.add_argument("--no-dealer-proxy", action="store_true",
                   help="no static proxy: dealer figures only on days after a dated chain (NaN otherwise)")
    p.add_argument("--positioning", choices=POSITIONINGS, help="dealer positioning model for GEX, vanna and "
                   "charm alike (default: the dealer_positioning setting; streamer/core/dealer_reval.py)")
    p.add_argument("--from", dest="start", help="first date of the report, YYYY-MM-DD (history before warms up)")
    p.add_argument("--to", dest="end", help="last date of the report, YYYY-MM-DD")
    p.add_argument("--rules", help="rule TOML file (default: streamer/rules/default.toml)")
    p.add_argument("--flows-config", help="flows TOML file (default: streamer/config/flows.toml)")
    p.add_argument("--events", default="backtest_events.jsonl", help="JSON-lines output of trigger events")
    p.add_argument("--png", default="backtest_report.png", help="PNG report path ('' = none)")
    p.add_argument("--top", type=int, default=10, help="largest flow days to list")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from streamer import backtest as bt
    from streamer.core.flows import ConfigError, FlowConfig
    from streamer.core.rules import RuleError, RuleSet
    from streamer.engine import known_signals
    from streamer.history import DEFAULT_DATA_DIR, load_history
    from streamer.settings import Settings

    data_dir = Path(args.data_dir) if args.data_dir else (DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else None)
    try:
        cfg = FlowConfig.from_toml(Path(args.flows_config)) if args.flows_config else FlowConfig.default()
        # the leveraged funds' own benchmarks (data_dir/equities), fed to the engine as index closes
        hist = load_history(data_dir, spx=args.spx, vix=args.vix, bond=args.bond, bond_input=args.bond_input,
                            vix9d=args.vix9d, vix3m=args.vix3m, gex=args.gex,
                            underlyings=cfg.leveraged_etf.symbols if data_dir is not None else ())
        # the signal catalogue (streamer/core/signals.py), expanded for this history's series
        known = known_signals(Settings(), cfg)
        rules = RuleSet.from_toml(Path(args.rules), known) if args.rules else RuleSet.default(known)
    except (FileNotFoundError, ValueError, RuleError, ConfigError) as exc:
        print(f"streamer backtest: error: {exc}", file=sys.stderr)
        return 2
    st = Settings()
    proxy = None
    if not args.no_dealer_proxy:
        paths = args.chain or (bt.default_proxy_paths(data_dir) if data_dir else [])
        if paths:
            proxy = bt.load_chain(paths, st.rate, st.div_yield)
    dated = {d: proxy if proxy is not None and sorted(map(str, ps)) == sorted(map(str, args.chain or
                                                                              bt.default_proxy_paths(data_dir)))
             else bt.load_chain(ps, st.rate, st.div_yield)
             for d, ps in (bt.dated_chain_paths(data_dir) if data_dir else {}).items()}   # the proxy's files: loaded once
    seed = bt.vix_seed_closes(hist.sources["vix"], hist.dates[0], cfg.vix_rank_window_days)
    res = bt.run_backtest(hist, config=cfg, rules=rules, start=args.start, end=args.end, proxy=proxy,
                          dated=dated, positioning=args.positioning, vix_seed=seed, progress=not args.no_progress)
    if res.withheld:
        res.notes.append(f"{len(res.withheld)} trigger(s) withheld for a non-finite number: "
                         + ", ".join(f"{d} {r} ({why})" for d, r, why in res.withheld[:5]))
    refused = {k: v for k, v in rules.refused().items() if v}
    if refused:
        res.notes.append("notional guard refused (a BUY with a notional <= 0, a SELL >= 0, or none finite): "
                         + ", ".join(f"{k} {v}" for k, v in sorted(refused.items())))
    n = bt.write_events(res, args.events)
    if args.png:
        bt.plot(res, args.png)
    print(bt.summary(res, args.top))
    print(f"{n} events -> {args.events}" + (f"; report -> {args.png}" if args.png else ""))
    return 0
