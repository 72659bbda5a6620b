"""Command line: ``padlib <command>`` (also ``python -m padlib``). Each chapter's module adds its command here."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import PadlibError


def _cmd_models(args) -> int:
    from .models import OFFLINE_MODELS

    for name, spec in OFFLINE_MODELS.items():
        p = spec.preprocessing
        print(f"{name:24s} {spec.library:12s} padding={spec.padding:8s} input={p.input_size} mean={p.mean}")
    print("any other torchvision or timm name loads with hub weights when online (pretrained=False offline); "
          "NAME=PATH loads your own checkpoint of that architecture")
    return 0


def _cmd_book(args) -> int:
    from . import book

    out = book.claim_build_dir(Path(args.out))
    executed = out / ("executed-smoke" if args.smoke else "executed")
    params = dict(zip(args.param[0::2], args.param[1::2])) if args.param else {}
    for k, v in list(params.items()):  # papermill parameters from the command line: parse numbers/bools/lists
        import yaml

        params[k] = yaml.safe_load(v)
    if not args.build_only:
        records = book.execute_chapters(executed, smoke=args.smoke, only=args.only, parameters=params)
        for r in records:
            print(f"notebook_seconds[{r['notebook']}]={r['seconds']}")
        if not args.only or not (executed / f"{book.SAMPLE_REPORT}.html").exists():
            print(f"report_seconds[{book.SAMPLE_REPORT_MODEL}]={book.write_sample_report(executed, args.smoke):.1f}")
    missing = book.missing_chapters(executed)
    if args.only and missing:  # the site needs every chapter: rebuild it once the others were executed too
        print(f"built no site: not executed yet under {executed}: {', '.join(missing)} "
              f"(run the book once without --only, then --only re-runs a chapter and rebuilds the site)")
        return 0
    html = book.build_site(executed, out)
    problems = book.site_problems(html)
    for p in problems:
        print("site problem:", p, file=sys.stderr)
    print(f"site: {html / 'index.html'}")
    return 1 if problems else 0


def _cmd_vendor(args) -> int:
    from . import book

    print(f"vendored browser assets into {book.vendor_assets()}")
    return 0


def _cmd_bench(args) -> int:
    from . import bench

    return bench.main(args.only)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="padlib", description="The padding analysis book's tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("models", help="list the models that work offline")
    p.set_defaults(func=_cmd_models)
    p = sub.add_parser("book", help="execute every chapter with papermill and build the static site")
    p.add_argument("--smoke", action="store_true", help="tiny, fast parameters (as the tests use)")
    p.add_argument("--only", nargs="+", metavar="CHAPTER", help="execute only these chapters (number or name)")
    p.add_argument("-p", "--param", nargs=2, action="extend", metavar=("NAME", "VALUE"), default=[],
                   help="override a notebook parameter (YAML value), e.g. -p n_images 256")
    p.add_argument("--build-only", action="store_true", help="rebuild the site from already executed notebooks")
    p.add_argument("--out", default="_build", help="output folder (default _build)")
    p.set_defaults(func=_cmd_book)
    p = sub.add_parser("vendor", help="copy the npm browser assets into book/_static/offline")
    p.set_defaults(func=_cmd_vendor)
    p = sub.add_parser("bench", help="print benchmark figures, one name=value per line")
    p.add_argument("only", nargs="*", help="run only benchmarks whose name contains one of these")
    p.set_defaults(func=_cmd_bench)
    for register in _chapter_commands():
        register(sub)
    return parser


def _chapter_commands():
    """Each chapter module may define ``register_cli(subparsers)``; listed here in book order."""
    import importlib

    registers = []
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"padlib.{name}")
        registers.append(module.register_cli)
    return registers


COMMAND_MODULES: list[str] = ["audit", "pans", "ablation", "kernels", "model_report"]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except PadlibError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
