"""`streamer chain`: report one option-chain snapshot as one JSON object.

Reads one or more chain files of ONE snapshot (e.g. the Jan- and Feb-expiry files of the same
evening; duplicates keep the first file's row; spot and time come from the first file) and
prints: spot, the nearest expiry's put-call-parity forward and ATM IV, Cboe-method VIX and
VIX9D (null plus a reason when the chain cannot give one, e.g. a near-the-money subset), dealer
exposures (GEX, delta, vanna, charm; zero-DTE part), gamma flip, call/put walls, absolute-gamma
strike, IV coverage (how many contracts gave no IV, by reason) and per-expiry detail.

Units and signs:
  gex_usd_per_pct       $ of dealer delta per 1% move of spot  (gamma x OI x 100 x S^2 x 0.01)
  delta_exposure_usd    $ dealer delta                          (delta x OI x 100 x S)
  vanna_usd_per_vol_pt  $ of dealer delta per +1 vol point      (vanna x OI x 100 x S x 0.01)
  charm_usd_per_day     $ of dealer delta per calendar day      (charm x OI x 100 x S / 365)
  Dealer sign ("naive" SqueezeMetrics convention): customers buy puts and sell calls, so dealers
  are long calls (+) and short puts (-). Positive GEX = dealers long gamma (their hedging sells
  rallies and buys dips). Exposures are the dealers' position greeks; their hedge flow is the
  negative of a change (e.g. IV down 1 pt with vanna V < 0: dealers buy about |V|).
  gamma_flip: spot level where total GEX changes sign, every option re-priced on a 60-point grid
  over +/-20% with its IV fixed (null: no sign change on the grid). Strikes, spot and forwards are
  index points; IVs annualized decimals; VIX in vol points; days are calendar days to settlement
  (AM-settled SPX monthlies at 09:30 ET, others at 16:00 ET). Expired contracts carry nothing.

IVs, exposures, walls, gamma flip and ATM IV come from the live engine: the file's quotes and open
interest (as --replay publishes them) and one index print at the spot go through the worker's entry
point (streamer.engine.run_offline -> UnderlyingEngine.ingest), so each quote's IV is solved from
its mid (0 < bid <= ask) against its expiry's put-call-parity forward, with the worker's --rate and
--div-yield unless given. ATM IV: mean call/put IV at the parity strike K* (top level: the first
expiry at least 7 days out). Spot, where greeks are evaluated, is the file's 'Last' for quotes
of a regular session or its close, and the spot the quotes imply by put-call parity for overnight
(GTH) quotes, whose 'Last' is the previous close while the quotes have moved (--spot to choose).
--iv vendor uses the file's IV column instead
(a comparison outside the engine).
Input, told apart by the header: Cboe "quotedata" CSV (calls and puts side by side), or a chain
of one row per contract: Cboe DataShop Option EOD Summary (bid_eod/ask_eod valued at the options
close, else bid_1545/ask_1545 at 15:45 ET) and Option Quotes (quote_datetime: one snapshot per file,
or --asof picks one), or a vendor export with an OCC symbol column (SPXW241106C05900000, O:SPXW...,
padded OSI) or expiration/strike/type columns, bid and ask, and optional last, volume,
open_interest, iv (percent or fraction), delta, gamma, underlying_price and a quote date or
timestamp. No date column: pass --asof. No underlying price: the parity spot (--spot auto/parity).

Time: by default the quotes are valued when their prices are from (report field asof_basis): the
file's 'Date:' line during a session (SPX/XSP/VIX options also trade overnight in Cboe's Global
Trading Hours, from 20:15 ET), else the last close before it (16:15 ET for index and SPY/QQQ/IWM
options, 16:00 for others; 13:15/13:00 on early-close days): a file saved after the close, at a
weekend or on a holiday holds the closing quotes, and at the 16:15 close its VIX is comparable with
Cboe's published close. --asof overrides.

--replay also publishes the snapshot's quotes and open interest to Kafka (topics
streamer.option-quotes.v1 / streamer.open-interest.v1, keyed by the underlying, stamped --asof);
quotes with no market (ask <= 0) or invalid are not sent and are counted.
"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from streamer.settings import Settings

    p = sub.add_parser("chain", help="report (and optionally replay) a Cboe quotedata chain snapshot",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="chain file(s) of one snapshot: Cboe quotedata, Cboe DataShop (Option EOD Summary / "
                   "Option Quotes) or a vendor export with one row per contract")
    p.add_argument("--underlying", help="with a file of one row per contract: the underlying to read when the "
                   "file holds several, and the root when it has none (SPX/NDX/RUT: third-Friday expiries are "
                   "the AM monthlies, others the PM weeklies)")
    p.add_argument("--asof", help="snapshot time, ISO datetime (naive = New York time), e.g. "
                   "2024-01-05T16:15; default: when the first file's prices are from (its 'Date:' line, "
                   "or the last close before it when no session was open then)")
    d = Settings()
    p.add_argument("--rate", type=float, default=None,
                   help=f"risk-free rate, continuous annual decimal (default: the worker's, {d.rate})")
    p.add_argument("--div-yield", type=float, default=None,
                   help=f"dividend yield, continuous annual decimal (default: the worker's, {d.div_yield})")
    p.add_argument("--iv", choices=["mid", "vendor"], default="mid",
                   help="IV source: the engine's IVs from quote mids (default) or the file's IV column")
    p.add_argument("--spot", choices=["auto", "last", "parity"], default="auto", dest="spot_source",
                   help="spot: the file's 'Last', or implied by the nearest expiry's parity forward, "
                   "S = F exp(-(r-q)T); auto (default): 'Last' when the quotes are from a regular session "
                   "or its close, parity when they are overnight (GTH) quotes, whose 'Last' is the last close")
    p.add_argument("--profile", action="store_true", help="also print the GEX-vs-spot grid profile")
    p.add_argument("--pretty", action="store_true", help="indented JSON")
    p.add_argument("--replay", action="store_true",
                   help="also publish the snapshot's quotes and open interest to Kafka")
    p.add_argument("--replay-rate", type=float, help="with --replay: at most this many messages/s")
    p.add_argument("--bootstrap", help="with --replay: Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", help="with --replay: prefix of every topic name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from streamer import chain_report

    try:
        asof = chain_report.parse_asof(args.asof) if args.asof else None
        snap = chain_report.load(args.files, asof, underlying=args.underlying,
                                 require_spot=args.spot_source == "last")
        out = chain_report.report(snap, args.rate, args.div_yield, args.iv,
                                  include_profile=args.profile, spot_source=args.spot_source)
    except (OSError, ValueError) as exc:
        print(f"streamer chain: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2 if args.pretty else None, allow_nan=False))
    if args.replay:
        return _replay(args, snap, chain_report)
    return 0


def _replay(args: argparse.Namespace, snap, chain_report) -> int:
    import sys
    from collections import Counter

    from streamer import kafka_io, publisher
    from streamer.errors import StreamerError
    from streamer.settings import load_settings

    skipped: Counter = Counter()

    async def go() -> Counter:
        # only the inputs it writes: a secured simulator principal may not even see the others
        await kafka_io.ensure_topics(settings, kafka_io.topics_for(settings).inputs())
        return await publisher.publish(settings, chain_report.replay_events(snap, skip=skipped),
                                       rate=args.replay_rate, progress=sys.stderr.isatty())

    try:
        settings = load_settings(bootstrap=args.bootstrap, topic_prefix=args.topic_prefix)
        sent = kafka_io.run(go())
    except StreamerError as exc:  # bad settings, TLS/SASL/ACL refusal: one line, no traceback, no retry
        print(f"streamer chain: error: {exc}", file=sys.stderr)
        return 2
    for topic, n in sorted(sent.items()):
        print(f"{n:>8} messages -> {topic}", file=sys.stderr)
    for why, n in sorted(skipped.items()):
        print(f"{n:>8} quotes not sent ({why})", file=sys.stderr)
    return 0
