"""Command line: ``padlib <command>`` (also ``python -m padlib``): the methods' commands, then the book's."""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

import pandas as pd
from torch import nn

from . import bench, cli_train
from ._distributed import launched_by_torchrun, process_group, world
from ._files import atomic_write
from .audit import audit_summary, even_padding_sizes, input_channels_size, padding_audit
from .chapters import site as book
from .chapters.ch3_ablation import pan_verdicts
from .chapters.claims import PAPER_CLAIM
from .data import list_images, probe_images
from .evaluation import output_info
from .errors import PadlibError, ProbeDataError, check_new_folder, check_new_output
from .experiments.ch3_ablation import ablation_report, report_tables
from .experiments.zoo import REPO, ZOO_CSV, build_meta_model, load_zoo_audit, zoo_audit, zoo_overview
from .kernels import data_free_pans, mean_kernel_asymmetry
from ._malloc import keep_freed_memory
from .model_report import POSITIONS, POSITIONS_MAX, check_positions, default_report_path, report
from .report_reach import REACH_IMAGES, REACH_RANGE
from .models import OFFLINE_MODELS, check_model_spec, load_model, preprocessing
from .pan_tables import pan_summary, side_sign_counts
from .pans import scan_pans
from .tiling import SWAPPABLE, SWAPS, border_reach
from .viz.report import save_report

SEED_MAX = 2**32 - 1  # numpy's seeds stop here; torch's and Python's take it too


def _whole(low: int, high: int | None = None, unit: str = ""):
    """An argparse ``type=``: a whole number in [low, high], else one line naming the bad value (argparse adds
    the flag), so a bad value is refused before any model is loaded."""
    what = f"a whole number{' of ' + unit if unit else ''}"
    rule = f"from {low} to {high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what} {rule}, got {text}")
        return value

    parse.__name__ = what
    return parse


def _number(low: float, high: float | None = None, open_low: bool = False, open_high: bool = False, hint: str = ""):
    """An argparse ``type=``: a finite number in the range (bounds closed unless ``open_*``), else one line."""
    if high is None:
        rule = f"{'>' if open_low else '>='} {low:g}"
    else:
        rule = f"between {low:g} and {high:g}" + (" (exclusive)" if open_low and open_high else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > low if open_low else value >= low) and (
            high is None or (value < high if open_high else value <= high))
        if not ok:
            raise argparse.ArgumentTypeError(f"must be a number {rule}{', e.g. ' + hint if hint else ''}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _positions(text: str) -> int:
    """``--positions``: 0 (no stage) or a whole number from 3 to POSITIONS_MAX, else one line (as :func:`_whole`)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not (value == 0 or 3 <= value <= POSITIONS_MAX):
        raise argparse.ArgumentTypeError(f"must be 0 (no objects-at-every-position stage) or a whole number from 3 "
                                         f"to {POSITIONS_MAX}, got {text}")
    return value


def _reach(text: str) -> int:
    """``--reach``: 0 (no stage) or a whole number of photographs from 2 to 64, else one line."""
    try:
        value = int(text)
    except ValueError:
        value = None
    low, high = REACH_RANGE
    if value is None or not (value == 0 or low <= value <= high):
        raise argparse.ArgumentTypeError(f"must be 0 (no border-reach stage) or a whole number of photographs from "
                                         f"{low} to {high}, got {text}")
    return value


def _output(text: str):
    """``--output``: a key of the forward's dict (e.g. out) or, when it reads as a whole number, an index of its
    tuple (e.g. 0, -1); an empty value is refused in one line (as :func:`_whole`)."""
    text = text.strip()
    if not text:
        raise argparse.ArgumentTypeError("must be a key of the model's output (e.g. out) or an index (e.g. 0), got ''")
    try:
        return int(text)
    except ValueError:
        return text


_OUTPUT_HOW = "pass --output KEY (e.g. --output out) or --output INDEX (e.g. --output 0)"


def _check_output(model: nn.Module, output, size: int, device) -> None:
    """Refuse, before any work, an ``--output`` the model's forward does not have, or an output padlib cannot read
    (one line naming the flag): one forward of a zero image, on meta tensors where the model allows it."""
    try:
        output_info(model, size, output, device)
    except PadlibError as e:
        text = re.sub(r"pass output= .*$", _OUTPUT_HOW, str(e)).replace("output=", "--output ")
        raise PadlibError(text if text.startswith("--output") else f"--output: {text}") from None


SIZE = _whole(8, unit="pixels")  # the probe images' own floor (padlib.data.probe_images)
SEED = _whole(0, SEED_MAX)
AT_LEAST_ONE = _whole(1)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are padlib's: one line, ``error: --images must be ...``, exit code 2 (via
    :func:`main`), no usage block; any other complaint points to the command's ``--help``."""

    def error(self, message):
        m = re.fullmatch(r"argument (\S+): (.*)", message, re.S)
        if m and m[2].startswith("must be"):  # from the type= checks below: the flag, the rule, the value
            raise _UsageError(f"{m[1]} {m[2]}")
        text = f"{m[1]}: {m[2]}" if m else message
        raise _UsageError(f"{text} (see '{self.prog} --help')")


class _UsageError(PadlibError):
    """A bad command line (flag, value or missing argument)."""


def _check_model(spec: str) -> None:
    """Refuse an unknown model name or a missing checkpoint file before anything is built or loaded."""
    check_model_spec(spec)


def _check_input(flag: str, path: str | None, folder: bool = True) -> None:
    """Refuse a missing input folder (or file) before the model is loaded; what is inside is read later."""
    if path is None:
        return
    if not os.path.exists(path):
        raise PadlibError(f"{flag} '{path}' does not exist; pass an existing {'folder' if folder else 'file'}")
    if folder and not os.path.isdir(path):
        raise PadlibError(f"{flag} '{path}' is a file, not a folder; pass the folder that contains the images")
    if not folder and os.path.isdir(path):
        raise PadlibError(f"{flag} '{path}' is a folder; pass a file")
    if folder:  # a folder without images is refused now too, naming the flag, not after the model has loaded
        try:
            list_images(path)
        except ProbeDataError as e:
            raise PadlibError(str(e).replace("image folder", flag, 1)) from None


def _load_for_audit(name: str) -> nn.Module:
    """A random-init model for auditing: timm names on the meta device (instant), others via load_model."""
    import timm


    if "=" in name:  # NAME=PATH: your checkpoint, loaded (and checked against the architecture) as everywhere
        return load_model(name)
    arch = name.split("/", 1)[1] if name.startswith("timm/") else name
    if (name.startswith("timm/") or (name not in OFFLINE_MODELS or OFFLINE_MODELS[name].library == "timm")) \
            and timm.is_model(arch) and not name.startswith("torchvision/"):
        try:
            model = build_meta_model(arch)
            model.padlib_name = name
            return model
        except Exception:  # noqa: BLE001 - fall back to a real build
            pass
    return load_model(name, pretrained=False)


def _cmd_audit(args) -> int:
    import pandas as pd

    _check_model(args.model)
    model = _load_for_audit(args.model)
    size = args.size if args.size is not None else input_channels_size(model)
    audit = padding_audit(model, size, all_layers=args.all)
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", None):
        cols = ["layer", "op", "in_h", "kernel", "stride", "dilation", "source", "pad_top", "pad_bottom",
                "read_top", "read_bottom", "pad_left", "pad_right", "read_left", "read_right", "uneven",
                "unread_sides", "extra_sides"]
        print(audit[cols].to_string(index=False) if len(audit) else "no layer pads at this size")
    s = audit_summary(audit)
    print(f"\n{args.model} at {size}: {s['n_padding_layers']} padding layers, {s['n_uneven']} uneven"
          + (f" (padding never read: {s['unread_sides'] or 'none'}; more read on: {s['extra_sides']})"
             if s["n_uneven"] else ""))
    sizes = even_padding_sizes(model, size, args.distance)
    print(f"even-padding sizes within {args.distance} of {size}: {sizes[:12] if sizes else 'none'}")
    return 0


def _cmd_zoo_audit(args) -> int:
    import timm

    names = timm.list_models(args.filter) if args.filter else None
    if args.filter and not names:
        raise PadlibError(f"--filter '{args.filter}' matches no timm model (a timm.list_models pattern, e.g. "
                          "'resnet*')")
    if args.limit:
        names = (names or timm.list_models())[: args.limit]
    if args.out is None:
        if names is not None:  # a partial audit must not replace the committed full one
            raise PadlibError(f"--filter/--limit audit only some models: pass --out FILE.csv (the default "
                              f"{ZOO_CSV.relative_to(REPO)} holds the full zoo audit the book reads)")
        out = Path(check_new_output(ZOO_CSV, True, "zoo audit file"))  # regenerating the book's cache: its job
    else:
        if not args.out.endswith(".csv"):  # the JSON beside it takes the .json name
            raise PadlibError(f"--out must end in .csv, got '{args.out}'")
        out = Path(check_new_output(args.out, args.force, "--out file"))
        check_new_output(out.with_suffix(".json"), args.force, "--out file's JSON companion")
    df = zoo_audit(names, max_distance=args.distance, out_csv=out, workers=args.workers)
    o = zoo_overview(load_zoo_audit(out))
    print(f"audited {o['audited']}/{o['models']} models in {df.attrs['total_seconds']:.0f} s "
          f"(build failed: {o['build_failed']}, forward failed: {o['forward_failed']}); "
          f"uneven at default size: {o['uneven_at_default']}; wrote {out} and {out.with_suffix('.json')}")
    return 0


def _register_audit(subparsers) -> None:
    p = subparsers.add_parser("audit", help="padding audit of one model at one input size (+ even-padding sizes)")
    p.add_argument("model", help="timm or torchvision name, e.g. mobilenet_v2, tf_efficientnet_lite0, resnet50 "
                                 "(NAME=PATH: your checkpoint of that architecture)")
    p.add_argument("--size", type=SIZE, default=None, help="input size (default: the model's)")
    p.add_argument("--all", action="store_true", help="also list convs and pools that do not pad")
    p.add_argument("--distance", type=_whole(0), default=16, help="search even-padding sizes this far from --size")
    p.set_defaults(func=_cmd_audit)
    p = subparsers.add_parser("zoo-audit", help="audit every timm architecture (meta device, no weights) -> CSV")
    p.add_argument("--out", default=None, help=f"CSV to write, a new file unless --force (default: regenerate "
                                               f"{ZOO_CSV.relative_to(REPO)}, full audits only)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("--filter", default=None, help="timm.list_models pattern, e.g. 'resnet*'")
    p.add_argument("--limit", type=AT_LEAST_ONE, default=None, help="only the first N models (for a quick look)")
    p.add_argument("--distance", type=_whole(0), default=32, help="search the nearest even size this far away")
    p.add_argument("--workers", type=AT_LEAST_ONE, default=2, help="processes (default 2)")
    p.set_defaults(func=_cmd_zoo_audit)


def _run_options(p, batch_size: int, out_help: str, force_help: str) -> None:
    """The options every long-running command shares: seed, batch size, device, and a new output (or --force)."""
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--batch-size", type=AT_LEAST_ONE, default=batch_size)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help=out_help)
    p.add_argument("--force", action="store_true", help=force_help)


def _register_scan(subparsers) -> None:
    p = subparsers.add_parser("scan", help="find Padding Aware Neurons in a model (chapter 1)")
    p.add_argument("model", help="model name, e.g. mobilenet_v2 or tf_efficientnet_lite0 (NAME=PATH: your checkpoint)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", type=AT_LEAST_ONE, default=64, help="number of probe images (default 64)")
    src.add_argument("--image-dir", help="a folder of images instead of the offline photographs")
    p.add_argument("--size", type=SIZE, default=None, help="input size in pixels (default: the model's own)")
    p.add_argument("--fpr", type=_number(0, 1, True, True, "0.01"), default=0.01,
                   help="false-positive rate on the circular null (0.01)")
    p.add_argument("--reference", choices=("random_init", "none"), default="random_init",
                   help="random_init (default): a PAN must also be beyond what the same layer gives at random "
                        "initialisation (the padding_caused column keeps the circular-null verdict); none: the "
                        "older definition, padding-caused alone")
    p.add_argument("--definition", choices=("specialist", "learned", "padding"), default=None,
                   help="what is_pan means: specialist (default: learned, border-selective, FDR-controlled), "
                        "learned (padding-caused and beyond random init) or padding (padding-caused alone); "
                        "every reading is a column of the table")
    _run_options(p, 16, "write the table to FILE.csv or FILE.json (a new file unless --force)",
                 "overwrite an existing --out file")
    p.set_defaults(func=_cmd_scan)


def _cmd_scan(args) -> int:

    if args.out and not args.out.endswith((".csv", ".json")):
        raise PadlibError(f"--out must end in .csv or .json, got '{args.out}'")
    if args.out:
        check_new_output(args.out, args.force, "--out file")  # before the scan, not after it
    _check_model(args.model)
    _check_input("--image-dir", args.image_dir)
    # under torchrun (WORLD_SIZE > 1): one process group for the scan, destroyed on leaving; every process scans its
    # share of the batches, the sums are merged, and rank 0 alone prints and writes (padlib._distributed)
    with process_group(args.device) as device:
        return _scan(args, device)


def _scan(args, device) -> int:
    rank, processes = world()
    say = print if rank == 0 else (lambda *a, **k: None)
    model = load_model(args.model, device=device)
    n = args.images
    images = probe_images(n, size=args.size, seed=args.seed, image_dir=args.image_dir, model=model)
    reference = None if args.reference == "none" else args.reference
    if args.definition == "learned" and reference is None:
        raise PadlibError("--definition learned needs the random-init reference: leave out --reference none")
    scan = scan_pans(model, images, fpr=args.fpr, batch_size=args.batch_size, device=device,
                     reference=reference, progress=rank == 0, definition=args.definition)
    t = scan.table
    s = pan_summary(t).iloc[0]
    say(f"{scan.model_name}: {len(images)} images at {scan.input_size}, {s.layers} padded layers, "
        f"{s.filters} filters" + (f", scanned by {processes} processes (torchrun)" if processes > 1 else ""))
    say(f"threshold tau={scan.tau:.3f} (corners {scan.tau_corner:.3f}) for fpr={args.fpr} on the circular null; "
        f"null exceedance {scan.null_exceedance():.4f}")
    if reference:
        say(f"padding-caused (circular null only): {int(t.padding_caused.sum())}; beyond random init "
            f"({len(scan.init_thresholds)} layers, seeds {', '.join(map(str, sorted(set(scan.reference.seed))))}): "
            f"{int(t.learned.sum())}")
    if "specialist" in t:
        say(f"specialists (selectivity > {scan.selectivity_threshold:.3f}, Benjamini-Hochberg q <= {scan.fdr}): "
            f"{int(t.specialist.sum())}, of which at most {scan.expected_false_discoveries():.1f} expected false "
            f"discoveries; PANs below are the {scan.definition} reading")
    say(f"PANs: {s.pans} ({s.share_pct:.2f}% of filters); fire at border {s.fire} ({s.fire_pct:.2f}%), "
        f"silenced {s.silenced} ({s.silenced_pct:.2f}%)")
    say("per side (fire/silenced, counts and % of filters): " + ", ".join(
        f"{side} {r.fire}/{r.silenced} ({r.fire_pct:.2f}%/{r.silenced_pct:.2f}%)"
        for side, r in side_sign_counts(t).iterrows()))
    say(f"paper: {PAPER_CLAIM}")
    if args.out and rank == 0:
        with atomic_write(args.out, newline="") as f:  # all or nothing, even on Ctrl-C
            if args.out.endswith(".csv"):
                t.to_csv(f, index=False)
            else:
                t.to_json(f, orient="records", indent=1)
        say(f"wrote {len(t)} rows to {args.out}")
    return 0


def _register_kernels(subparsers) -> None:
    p = subparsers.add_parser("kernels", help="data-free PAN prediction and mean-kernel asymmetry (chapter 2)")
    p.add_argument("model", help="model name, e.g. mobilenet_v2 or tf_efficientnet_lite0 (NAME=PATH: your checkpoint)")
    p.add_argument("--tau", type=_number(0), default=2.0,
                   help="threshold on the predicted border contrast |z| (chapter 1 calibrates it; default 2.0)")
    p.add_argument("--size", type=SIZE, default=None, help="input size in pixels (default: the model's own)")
    p.add_argument("--mode", choices=("abs", "signed"), default="abs", help="mean-kernel asymmetry index")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_kernels)


def _cmd_kernels(args) -> int:
    _check_model(args.model)
    model = load_model(args.model)
    pred = data_free_pans(model, tau=args.tau, input_size=args.size)
    n = int(pred["pred_is_pan"].sum())
    print(f"{args.model}: {n} of {len(pred)} filters predicted to respond to the border (|z_p| >= {args.tau}), "
          "from the weights alone")
    asym = mean_kernel_asymmetry(model, input_size=args.size, mode=args.mode, seed=args.seed)
    cols = ["layer", "kernel", "stride", "in_size", "reads", "asym_lr", "asym_lr_lo", "asym_lr_hi", "asym_tb",
            "asym_tb_lo", "asym_tb_hi"]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(asym[cols].to_string(index=False))
    return 0


def _register_ablate(subparsers) -> None:
    p = subparsers.add_parser("ablate", help="PAN ablation vs size-matched controls, padding swaps, border shifts (chapter 3)")
    p.add_argument("model", help="model name, e.g. mobilenet_v2 (NAME=PATH: your checkpoint of that architecture)")
    p.add_argument("--images", type=AT_LEAST_ONE, default=24, help="evaluation images (default 24)")
    p.add_argument("--scan-images", type=AT_LEAST_ONE, default=32, help="probe images for the PAN scan (default 32)")
    p.add_argument("--image-dir", help="unlabelled folder of images instead of the offline photographs")
    p.add_argument("--labelled-dir", help="folder arranged <class>/<image>: report accuracy too")
    p.add_argument("--class-index", help="class-index mapping file for --labelled-dir")
    p.add_argument("--controls", type=AT_LEAST_ONE, default=5, help="control sets matched on ablation size (default 5)")
    _run_options(p, 8, "write the tidy tables to this folder (one CSV each; new or empty unless --force)",
                 "overwrite the CSVs in a non-empty --out folder")
    p.set_defaults(func=_cmd_ablate)


def _cmd_ablate(args) -> int:
    if args.out:  # before the long run
        check_new_folder(args.out, args.force, "--out folder", "CSVs")
    _check_model(args.model)
    _check_input("--image-dir", args.image_dir)
    _check_input("--labelled-dir", args.labelled_dir)
    _check_input("--class-index", args.class_index, folder=False)
    report = ablation_report(args.model, n_images=args.images, n_scan=args.scan_images, seed=args.seed,
                             image_dir=args.image_dir, labelled_dir=args.labelled_dir, class_index=args.class_index,
                             n_controls=args.controls, batch_size=args.batch_size, device=args.device)
    tables = report_tables([report])
    metric = "top1_accuracy" if report.labelled else "agreement"
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(tables["pans"].to_string(index=False))
        print("\nPAN ablation vs size-matched controls (KL from the intact model):")
        print(pan_verdicts(tables["comparison"], "kl").drop(columns="model").to_string(index=False))
        t = tables["interventions"]
        print(f"\ninterventions ({metric}, kl):")
        print(t[t["metric"].isin([metric, "kl"])].pivot_table(index="intervention", columns="metric",
                                                            values="value").to_string())
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for key, table in tables.items():
            with atomic_write(os.path.join(args.out, f"{key}.csv"), newline="") as f:
                table.to_csv(f, index=False)
        print(f"wrote {len(tables)} tables to {args.out}")
    return 0


def _register_report(subparsers) -> None:
    p = subparsers.add_parser("report", help="one self-contained HTML page answering the book's questions for a model")
    p.add_argument("model", help="model name (mobilenet_v2, timm/resnet50, ...) or NAME=PATH for your own weights")
    p.add_argument("--images", type=_whole(8), default=None,  # the random-init PAN reference takes 8
                   help="number of probe images, at least 8 (default 128 up to 224 px; above, as many as hold the "
                        "same pixels, at least 32: 32 at 512 px)")
    p.add_argument("--reach", type=_reach, default=REACH_IMAGES,
                   help=f"border reach (dense outputs): photographs at twice the input size whose tiles are compared "
                        f"with the whole (default {REACH_IMAGES}; 0 leaves the stage out)")
    p.add_argument("--image-dir", help="a folder of your images (searched recursively) instead of the offline photos")
    p.add_argument("--size", type=SIZE, default=None, help="input size in pixels (default: the model's own)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--positions", type=_positions, default=POSITIONS,
                   help=f"objects at every position: positions per axis, 3 to {POSITIONS_MAX} (default {POSITIONS}; "
                        "0 leaves the stage out)")
    p.add_argument("--output", type=_output, default=None, metavar="KEY",
                   help="which part of the model's output to compare when its forward returns a tuple or dict: a "
                        "key (e.g. out) or an index (e.g. 0); default: a dict's 'out', else the first tensor")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="HTML file to write, a new file unless --force "
                                 "(default padding-report-<model>.html here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:

    out = args.out or default_report_path(args.model)
    if not out.endswith((".html", ".htm")):
        raise PadlibError(f"--out must end in .html, got '{out}'")
    check_new_output(out, args.force, "--out file" if args.out else "report file")  # before the work, not after
    _check_model(args.model)
    _check_input("--image-dir", args.image_dir)
    if args.size is not None:  # the grid must fit the objects at that size (else the model's size: after loading)
        try:
            check_positions(args.positions, args.size)
        except PadlibError as e:
            raise PadlibError(f"--{e}") from None
    t0 = time.perf_counter()
    model = load_model(args.model, device=args.device)
    _check_output(model, args.output, args.size or preprocessing(model).input_size, args.device)
    rep = report(model, args.images, image_dir=args.image_dir, size=args.size, device=args.device, seed=args.seed,
                 positions=args.positions, output=args.output, reach=args.reach)
    save_report(rep, out, force=args.force)
    for line in rep.summary_lines():
        print(line)
    print("recommendations:")
    for i, r in enumerate(rep.recommendations, 1):
        print(f"  {i}. {r.text} ({r.evidence})")
    if rep.output:
        print(f"output compared: {rep.output}")
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s")
    return 0


def _output_spec(text: str):
    """``--output``: a dict key (``out``) or a tuple index (``0``, ``-1``), as ``output=`` takes them."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a key (e.g. out) or an index (e.g. 0), got '{text}'")
    return int(text) if re.fullmatch(r"-?\d+", text.strip()) else text


def _register_overlap(subparsers) -> None:
    p = subparsers.add_parser("overlap", help="how much overlap a dense model's tiles need (tiled vs whole-image "
                                              "prediction)")
    p.add_argument("model", help="a dense model (segmenter, detector, restoration), e.g. craft_vgg16_bn, a timm or "
                                 "torchvision name, or NAME=PATH for your own weights")
    p.add_argument("--tile", type=_whole(2, unit="pixels"), default=256, help="tile size in pixels (default 256)")
    p.add_argument("--tolerance", type=_number(0, 1, True, True, "0.01"), default=0.01,
                   help="largest error kept, as a fraction of the whole-image output's spread (default 0.01)")
    p.add_argument("--images", type=AT_LEAST_ONE, default=8,
                   help="number of images (default 8); the interval resamples whole images, so it needs 2 or more")
    p.add_argument("--image-dir", help="a folder of your images (the first --images files, centre-cropped) instead "
                                       "of the offline photos")
    p.add_argument("--size", type=SIZE, default=None, help="image size in pixels (default: twice the tile)")
    p.add_argument("--tiles", type=AT_LEAST_ONE, default=8, help="tiles per image (default 8)")
    p.add_argument("--output", type=_output_spec, default=None,
                   help="the part of the forward's result to compare: a dict key (e.g. out) or a tuple index (e.g. 0)")
    p.add_argument("--padding", nargs="*", choices=SWAPPABLE, default=None, metavar="SCHEME",
                   help="also measure with these paddings swapped in at inference (no names: "
                        f"{' '.join(SWAPS)}); choices: {', '.join(SWAPPABLE)}")
    _run_options(p, 8, "write the error-by-distance table to FILE.csv (a new file unless --force)",
                 "overwrite an existing --out file")
    p.set_defaults(func=_cmd_overlap)


def _as_flags(e: PadlibError) -> PadlibError:
    """border_reach's one line in the command's words: ``--tile 300`` where the API says ``tile=300``."""
    text = str(e).replace("a key, an index or a function", "a key or an index")
    e.command_line = re.sub(r"\b(output|tile|tolerance|size)= ?", r"--\1 ", text)
    return e


def _cmd_overlap(args) -> int:
    if args.out and not args.out.endswith(".csv"):
        raise PadlibError(f"--out must end in .csv, got '{args.out}'")
    if args.out:
        check_new_output(args.out, args.force, "--out file")  # before the work, not after it
    size = args.size if args.size is not None else 2 * args.tile
    if size <= args.tile:
        raise PadlibError(f"--tile {args.tile} must be smaller than the images (--size {size}): tiles are cut from "
                          "larger images")
    _check_model(args.model)
    _check_input("--image-dir", args.image_dir)
    model = load_model(args.model, device=args.device)
    images = probe_images(args.images, size=size, seed=args.seed, image_dir=args.image_dir, model=model)
    padding = True if args.padding == [] else args.padding
    try:
        r = border_reach(model, images, tile=args.tile, tolerance=args.tolerance, tiles_per_image=args.tiles,
                         padding=padding, output=args.output, batch_size=args.batch_size, device=args.device,
                         seed=args.seed, progress="images")
    except PadlibError as e:
        raise _as_flags(e) from None
    print(f"{args.model}: {r.n_tiles} tiles of {r.tile} px from {r.n_images} images of {size} px; output {r.output} "
          f"at stride {r.stride:g}")
    for scheme in r.schemes["padding"]:
        print(r.summary(scheme))
    for scheme, why in r.skipped.items():
        print(f"with {scheme} padding swapped in: not run ({why})")
    if args.out:
        with atomic_write(args.out, newline="") as f:  # all or nothing, even on Ctrl-C
            r.table.to_csv(f, index=False)
        print(f"wrote {len(r.table)} rows to {args.out}")
    return 0


def _cmd_models(args) -> int:

    for name, spec in OFFLINE_MODELS.items():
        p = spec.preprocessing
        print(f"{name:24s} {spec.library:12s} padding={spec.padding:8s} input={p.input_size} mean={p.mean}")
    print("any other torchvision or timm name loads with hub weights when online (pretrained=False offline); "
          "NAME=PATH loads your own checkpoint of that architecture")
    return 0


def _cmd_book(args) -> int:
    import yaml

    for key in args.only or ():  # an unknown chapter is refused before the build folder is touched
        book.find_chapter(key)
    params = dict(zip(args.param[0::2], args.param[1::2])) if args.param else {}
    for k, v in list(params.items()):  # papermill parameters from the command line: parse numbers/bools/lists
        try:
            params[k] = yaml.safe_load(v)
        except yaml.YAMLError:
            raise PadlibError(f"-p {k} {v!r}: the value is not valid YAML (a number, true/false, a string or a "
                              "[list])") from None
    out = book.claim_build_dir(Path(args.out))
    executed = out / ("executed-smoke" if args.smoke else "executed")
    if not args.build_only:
        records = book.execute_chapters(executed, smoke=args.smoke, only=args.only, parameters=params)
        for r in records:
            print(f"notebook_seconds[{r['notebook']}]={r['seconds']}")
        for model in book.SAMPLE_REPORTS:
            if not args.only or not (executed / f"{book.sample_report_name(model)}.html").exists():
                print(f"report_seconds[{model}]={book.write_sample_report(executed, args.smoke, model):.1f}")
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
    print(f"vendored browser assets into {book.vendor_assets()}")
    return 0


def _cmd_bench(args) -> int:
    return bench.main(args.only)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="padlib", description="The padding analysis book's tools.")
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
    """The chapters' commands, in book order."""
    return [_register_audit, _register_scan, _register_ablate, _register_kernels, _register_report, _register_overlap,
            lambda sub: cli_train.register(sub, _whole, _number, SEED),
            lambda sub: cli_train.register_detector(sub, _whole, _number, SEED)]


def main(argv=None) -> int:
    """``padlib ...`` (the console script and ``python -m padlib``): the exit code, 0 when all went well.

    Every failure the user can fix is one line on stderr, never a traceback: ``error: ...`` and code 2 for a
    bad argument, input or output path (checked before any work), ``interrupted`` and code 130 on Ctrl-C (the
    shell's convention; no half-written output file is left, see :func:`padlib._files.atomic_write`).
    """
    if argv is None:  # the process is the command's own (the console script, python -m padlib), not a caller's
        keep_freed_memory()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        if launched_by_torchrun() and args.command not in ("scan", "train", "train-detector"):
            raise PadlibError(f"'padlib {args.command}' runs in one process; under torchrun only 'padlib scan' (its "
                              "images) and 'padlib train' / 'train-detector' (their batches) share their work among "
                              "the processes (run the other commands without torchrun)")
        return args.func(args)
    except PadlibError as e:  # the command-line wording where the API's names no option of the command
        print(f"error: {getattr(e, 'command_line', None) or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted", file=sys.stderr)
        return 130


def _close_progress_bars() -> None:
    """End the progress bars an interrupted command left open, so ``interrupted`` starts its own line."""
    try:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()
    except Exception:  # noqa: BLE001 - cosmetic only: never hide the interruption behind an error
        pass

