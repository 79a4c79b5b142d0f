"""``bci fl``: federated training across sites (Flower).

::

    bci fl simulate examples/fl-sites.toml [--engine ray|deployment] [--json]
    bci fl certs CERTS --site clinic-a --site clinic-b --site lab-c
    bci fl server FEDERATION.toml --certs CERTS [--port 9092]
    bci fl site --data SITE.toml --superlink HOST:9092 --ca CERTS/ca.crt \\
        --key CERTS/sites/clinic-a.key

TLS and SuperNode authentication are on unless ``--insecure`` is given explicitly.
Flower is started by the subcommands as separate processes, never imported here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    text = "federated training across sites (Flower)"
    parser = sub.add_parser(
        "fl", help=text, description=text,
        epilog="TLS and SuperNode authentication are on unless --insecure is given; "
               "Flower's telemetry and update checks are off.")
    parser.set_defaults(func=run)
    sub = parser.add_subparsers(dest="fl_command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="run a federation file's sites on this machine")
    p.add_argument("config", type=Path, help="federation TOML with [[site]] tables")
    p.add_argument("--engine", choices=("ray", "deployment"), default=None,
                   help="Flower's Ray simulation runtime, or a loopback deployment "
                        "(default: [simulation] engine, else ray)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="the sites' folders go under it (default: [federation] workdir, "
                        "else ./bci-fl-<config name>)")
    p.add_argument("--out", type=Path, default=None,
                   help="server-side outputs (default: the workdir)")
    p.add_argument("--rounds", type=int, default=None, help="override [federation] rounds")
    p.add_argument("--resume", action="store_true",
                   help="continue from the sites' layers and the global weights on disk")
    p.add_argument("--verbose", action="store_true", help="show Flower's logs")
    p.add_argument("--json", action="store_true", help="end with one JSON object")

    p = sub.add_parser("certs", help="make a CA, the server certificate and site keys")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--site", action="append", required=True, metavar="NAME",
                   help="a site name (repeat for each site)")
    p.add_argument("--host", action="append", default=[], metavar="NAME_OR_IP",
                   help="another name/address of the server (besides 127.0.0.1, localhost)")
    p.add_argument("--days", type=int, default=365, help="validity (default 365)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CA")

    p = sub.add_parser("server", help="a SuperLink and the ServerApp, until the run ends")
    p.add_argument("config", type=Path, help="federation TOML")
    p.add_argument("--certs", type=Path, default=None,
                   help="bci fl certs folder: ca.crt, server.crt/.key, sites.json")
    p.add_argument("--insecure", action="store_true",
                   help="no TLS and no SuperNode authentication (never across a network)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=9092, help="SuperLink port (default 9092)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="logs, results, global weights (default: <workdir>/server)")
    p.add_argument("--wait", type=float, default=120.0,
                   help="seconds to wait for every registered site before starting")
    p.add_argument("--fresh", action="store_true",
                   help="start from fresh global weights instead of the last run's")
    p.add_argument("--verbose", action="store_true", help="echo the run's log")
    p.add_argument("--json", action="store_true", help="end with one JSON object")

    p = sub.add_parser("site", help="a SuperNode for one site, until stopped")
    p.add_argument("--data", type=Path, required=True,
                   help="site TOML ([site] table, or [[site]] with --site)")
    p.add_argument("--site", default=None, help="which [[site]] of --data")
    p.add_argument("--superlink", default="127.0.0.1:9092", help="HOST:PORT of the server")
    p.add_argument("--ca", type=Path, default=None, help="the federation's ca.crt")
    p.add_argument("--key", type=Path, default=None, help="this site's private key")
    p.add_argument("--insecure", action="store_true",
                   help="no TLS and no authentication (never across a network)")


def _table(summary: dict[str, Any]) -> str:
    lines = []
    sites = summary.get("sites", {})
    width = max([len(n) for n in sites] + [4])
    lines.append(f"{'site':<{width}}  {'n_train':>7}  {'n_test':>6}  {'local':>6}  "
                 f"{'federated':>9}  model")

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, int | float) else "—"

    for name, s in sorted(sites.items()):
        lines.append(f"{name:<{width}}  {s.get('n_train', '—')!s:>7}  "
                     f"{s.get('n_test', '—')!s:>6}  {fmt(s.get('local_accuracy')):>6}  "
                     f"{fmt(s.get('federated_accuracy')):>9}  {s.get('model', '—')}")
    secs = [t for t in summary.get("round_seconds", []) if t is not None]
    if secs:
        lines.append(f"{len(secs)} rounds, {sum(secs) / len(secs):.2f} s per round "
                     f"(min {min(secs):.2f}, max {max(secs):.2f}); engine "
                     f"{summary.get('engine')}, wall {summary.get('wall_seconds', 0):.1f} s")
    for r in summary.get("rejections", []):
        lines.append(f"round {r['round']}: rejected {r['site']} (node {r['node_id']}): "
                     f"{r['reason']}")
    if summary.get("skipped_rounds"):
        lines.append(f"rounds without aggregation: {summary['skipped_rounds']}")
    dp = summary.get("privacy")
    if dp:
        eps = dp.get("epsilon")
        lines.append(f"DP ({dp['mechanism']}): noise multiplier {dp['noise_multiplier']}, "
                     f"clipping norm {dp['clipping_norm']}, noise std {dp['noise_std']:.4g}; "
                     + (f"ε = {eps:.3g} at δ = {dp['delta']:g} after {dp['releases']} "
                        "releases" if eps is not None else "no release accounted"))
    if not summary.get("global_finite", True):
        lines.append("WARNING: the final global model is not finite")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run one ``bci fl`` subcommand."""
    # the federated stack (its data sets, training, mne, scipy) only for `bci fl`
    from bci.federated.deployment import DeploymentError

    logging.getLogger("bci.federated").setLevel(
        logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    try:
        return _run(args)
    except DeploymentError as err:
        print(f"bci fl {args.fl_command}: error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.fl_command == "certs":
        from bci.federated.certs import make_certs

        paths = make_certs(args.out, sites=args.site, hosts=args.host, days=args.days,
                           overwrite=args.overwrite)
        print(f"wrote {paths.ca_cert}, {paths.server_cert} (+ keys) and "
              f"{len(paths.sites)} site key pairs; the key list is {paths.key_list}.\n"
              f"Give each site ca.crt and its own sites/NAME.key; keep ca.key offline.")
        return 0

    from bci.federated.config import FederationConfig
    from bci.federated.deployment import Tls, run_site, serve

    if args.fl_command == "simulate":
        from bci.federated.simulation import simulate

        cfg = FederationConfig.load(args.config)
        if args.rounds is not None:
            if args.rounds < 1:
                raise SystemExit("bci fl simulate: --rounds must be >= 1")
            cfg.rounds = args.rounds
        summary = simulate(cfg, engine=args.engine, workdir=args.workdir, out_dir=args.out,
                           resume=args.resume, verbose=args.verbose)
        print(json.dumps(summary, default=str) if args.json else _table(summary))
        return 0 if summary.get("global_finite", False) else 1

    if args.fl_command == "server":
        cfg = FederationConfig.load(args.config)
        if args.insecure:
            tls, key_list = None, None
            print("bci fl server: --insecure: no TLS, no SuperNode authentication",
                  file=sys.stderr)
        else:
            if args.certs is None:
                raise SystemExit("bci fl server: expected --certs DIR (bci fl certs DIR "
                                 "--site …), or --insecure")
            tls, key_list = Tls.from_dir(args.certs), args.certs / "sites.json"
        summary = serve(args.config, run_dir=args.run_dir or cfg.workdir / "server", tls=tls,
                        key_list=key_list, host=args.host, port=args.port,
                        wait_sites=args.wait, resume=not args.fresh, echo=args.verbose)
        print(json.dumps(summary, default=str) if args.json else _table(summary))
        return 0 if summary.get("global_finite", False) else 1

    if args.fl_command == "site":
        if args.insecure:
            print("bci fl site: --insecure: no TLS, no authentication", file=sys.stderr)
        elif args.ca is None or args.key is None:
            raise SystemExit("bci fl site: expected --ca CA.crt and --key SITE.key, or "
                             "--insecure")
        return run_site(args.data, site_name=args.site, superlink_address=args.superlink,
                        ca=args.ca, key=args.key, insecure=args.insecure)
    raise SystemExit(f"bci fl: unknown command {args.fl_command!r}")
