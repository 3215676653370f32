"""The analysis commands: ``study`` (the intervention study, ablations and baselines on the toy model) and
``report`` (every notebook executed headless into HTML).

They join the ``resdit`` command line through the ``resdit.commands`` entry-point group (``resdit study``,
``resdit report``), so the library never imports this package; ``python -m analysis`` runs them alone.
"""

from __future__ import annotations

from resdit.args import Parser, positive_float, positive_int, run_command, shard


def add_study(sub) -> None:
    s = sub.add_parser("study", help="the intervention study, ablations and baselines on the toy model")
    s.add_argument("--out", default=None, help="study folder (results.jsonl, summary.json, images/; resumable)")
    s.add_argument("--rescore", metavar="DIR", default=None,
                   help="recompute every metric and the summary of a study folder from its stored images")
    s.add_argument("--scales", type=positive_float, nargs="+", default=[2.0, 4.0], help="side scale factors (> 0)")
    s.add_argument("--prompts", type=positive_int, default=16, help="held-out prompts")
    s.add_argument("--seeds", type=positive_int, default=2, help="noise seeds per prompt")
    s.add_argument("--steps", type=positive_int, default=20, help="denoising steps")
    s.add_argument("--conditions", nargs="+", default=None, help="conditions to run (default: all)")
    s.add_argument("--model", default=None, help="toy weights folder (default: the shipped model)")
    s.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads")
    s.add_argument("--shift", choices=["base", "pipeline"], default="base",
                   help="scheduler shift of every condition: the base size's (default) or the pipeline's own")
    s.add_argument("--shard", type=shard, default=None, help="i/n (0 <= i < n): run every n-th group starting at i")
    s.add_argument("--smoke", action="store_true", help="2 prompts, 1 seed, 6 steps, scale 2, core conditions")
    s.add_argument("--summarize", action="store_true", help="merge shard results and write summary.json")
    s.add_argument("--allow-mixed", action="store_true",
                   help="summarize rows of different commits or models together (the summary lists each source)")
    s.set_defaults(func=_study)


def add_report(sub) -> None:
    r = sub.add_parser("report", help="execute every notebook headless and write an HTML report")
    r.add_argument("--out", required=True, help="report folder (HTML per notebook + index.html)")
    r.add_argument("--smoke", action="store_true", help="small parameters (CI)")
    r.add_argument("--only", nargs="+", default=None, help="run only notebooks whose names contain these")
    r.set_defaults(func=_report)


def _study(args) -> int:
    from .study import main

    return main(args)


def _report(args) -> int:
    from .report import main

    return main(args)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m analysis", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_study(sub)
    add_report(sub)
    args = parser.parse_args(argv)
    return run_command(args.func, args)
