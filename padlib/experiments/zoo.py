"""The zoo audit: every timm architecture built on the meta device and audited at its default size."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import torch
from torch import nn

from .._files import atomic_write
from ..audit import _first_line, audit_summary, nearest_even_size, padding_audit
from ..errors import PadlibError, UnknownModelError

REPO = Path(__file__).resolve().parents[2]
ZOO_CSV = REPO / "results" / "zoo_audit.csv"
ZOO_META = REPO / "results" / "zoo_audit.json"


# ---------------------------------------------------------------------------------------------------------
# The zoo audit: every timm architecture, built on the meta device (shapes only), at its default input size.

def model_family(name: str) -> str:
    """The architecture family of a timm model: the timm source module defining it (e.g. 'efficientnet' for
    tf_efficientnet_lite0, 'resnet' for resnet50d); when unknown, the name up to the first '_' or digit."""
    try:
        from timm.models._registry import _model_to_module

        module = _model_to_module.get(name)
        if module:
            return module
    except ImportError:
        pass
    m = re.match(r"[A-Za-z]+", name.removeprefix("tf_"))
    return m.group(0).lower() if m else name


def build_meta_model(name: str) -> nn.Module:
    """A timm architecture built on the meta device: the module tree and shapes, no weights, no memory."""
    import timm

    if not timm.is_model(name):
        raise UnknownModelError(f"'{name}' is not a timm model (see timm.list_models())")
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    model.eval()
    return model


def audit_zoo_model(name: str, max_distance: int = 32) -> dict:
    """Zoo-audit row for one timm architecture: build on meta, audit at the default size, find the nearest even size.

    ``seconds`` is wall time, ``cpu_seconds`` the CPU time of this process (what the row costs on an idle core)."""
    row = {"model": name, "family": model_family(name), "tf_port": name.startswith("tf_")}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        _fill_zoo_row(row, name, max_distance)
    finally:
        row["seconds"] = round(time.perf_counter() - t0, 3)
        row["cpu_seconds"] = round(time.process_time() - c0, 3)
    return row


def _fill_zoo_row(row: dict, name: str, max_distance: int) -> None:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_meta_model(name)
    except Exception as e:  # noqa: BLE001 - every failure is listed, with its first line
        row.update(status="build_failed", error=_first_line(e))
        return
    cfg = getattr(model, "pretrained_cfg", None) or {}
    c, h, w = tuple(cfg.get("input_size") or (3, 224, 224))
    row.update(default_size=int(h) if h == w else f"{h}x{w}", channels=int(c))
    try:
        audit = padding_audit(model, (int(h), int(w)), channels=int(c))
    except PadlibError as e:
        row.update(status="forward_failed", error=str(e)[:240])
        return
    row.update(status="ok", error="", **audit_summary(audit))
    if row["n_uneven"] == 0:
        row.update(nearest_even_size=int(h) if h == w else None, even_distance=0 if h == w else None)
    elif h == w:
        size = nearest_even_size(model, int(h), max_distance, exhaustive=False)
        row.update(nearest_even_size=size, even_distance=abs(size - int(h)) if size else None)


ZOO_COLUMNS = ["model", "family", "tf_port", "status", "error", "default_size", "channels", "n_padding_layers",
               "n_uneven", "n_dynamic_same", "n_ceil_overhang", "unread_sides", "extra_sides", "nearest_even_size",
               "even_distance", "seconds", "cpu_seconds"]


def _zoo_worker_init():
    """One thread per worker; Ctrl-C is the parent's to handle (a worker stopped mid-queue prints a traceback)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def zoo_audit(models=None, max_distance: int = 32, progress: bool = True, out_csv=None, workers: int = 1):
    """Audit every timm architecture (or ``models``) at its default input size; returns one row per model.

    Models that fail to build or to run are kept, with ``status`` and the error's first line. The nearest
    even-padding size is searched with ``nearest_even_size(exhaustive=False)`` within ``max_distance``.
    ``workers`` > 1 audits models in that many processes. With ``out_csv``, writes the CSV and a JSON next
    to it recording timm/torch versions, date and timing.
    """
    import datetime
    import platform

    import pandas as pd
    import timm
    from tqdm.auto import tqdm

    names = list(timm.list_models()) if models is None else list(models)
    t0 = time.perf_counter()
    rows = []
    bar = tqdm(total=len(names), desc="zoo audit", unit="model", disable=not progress)
    if workers > 1:
        import functools
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        job = functools.partial(audit_zoo_model, max_distance=max_distance)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_zoo_worker_init)
        try:
            for row in pool.map(job, names, chunksize=4):
                rows.append(row)
                bar.update()
        except BaseException:  # Ctrl-C included: stop now, not after the models already handed out
            workers_now = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in workers_now:
                proc.terminate()  # their rows would be dropped anyway
            raise
        pool.shutdown()
    else:
        for name in names:
            rows.append(audit_zoo_model(name, max_distance))
            bar.update()
    bar.close()
    df = pd.DataFrame(rows).reindex(columns=ZOO_COLUMNS)
    total = time.perf_counter() - t0
    if out_csv is not None:
        out_csv = Path(out_csv)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out_csv, newline="") as f:  # the committed audit is never left half-written
            df.to_csv(f, index=False)
        ok = df[df["status"] == "ok"]
        meta = {
            "timm_version": timm.__version__, "torch_version": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "n_models": len(df), "n_ok": int(len(ok)), "n_build_failed": int((df["status"] == "build_failed").sum()),
            "n_forward_failed": int((df["status"] == "forward_failed").sum()),
            "max_distance": max_distance, "even_size_search": "nearest_even_size(exhaustive=False)",
            "workers": workers,
            "total_seconds": round(total, 1),
            "median_seconds_per_model": round(float(df["seconds"].median()), 4),
            "total_cpu_seconds": round(float(df["cpu_seconds"].sum()), 1),
            "median_cpu_seconds_per_model": round(float(df["cpu_seconds"].median()), 4),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "command": "python -m padlib zoo-audit",
        }
        with atomic_write(out_csv.with_suffix(".json")) as f:
            f.write(json.dumps(meta, indent=2) + "\n")
    df.attrs["total_seconds"] = total
    return df


def load_zoo_audit(path=None):
    """The committed zoo audit (CSV) and its metadata (timm version, date); regenerate with ``python -m padlib zoo-audit``."""
    import pandas as pd

    path = Path(path) if path else ZOO_CSV
    if not path.exists():
        raise PadlibError(f"no zoo audit at {path}; run `python -m padlib zoo-audit` (its run time is measured "
                          f"and recorded in results/zoo_audit.json)")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in ("unread_sides", "extra_sides", "error"):
        df[col] = df[col].fillna("")
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    df.attrs.update(meta)
    return df


def even_at_default_or_nearest(zoo):
    """Per zoo row: True when the model pads evenly at its default size (no uneven layer; this includes models
    with non-square inputs, whose row has no nearest_even_size) or at the nearest even size found."""
    return (zoo["n_uneven"] == 0) | zoo["nearest_even_size"].notna()


def zoo_by_family(zoo):
    """Per family: models audited, share with uneven padding at the default size, share even at the default or
    nearest size (:func:`even_at_default_or_nearest`)."""
    ok = zoo[zoo["status"] == "ok"].copy()
    ok["uneven_default"] = ok["n_uneven"] > 0
    ok["even_at_nearest"] = even_at_default_or_nearest(ok)
    g = ok.groupby("family")
    out = g.agg(models=("model", "size"), uneven_at_default=("uneven_default", "mean"),
                even_at_nearest=("even_at_nearest", "mean"),
                median_uneven_layers=("n_uneven", "median")).reset_index()
    return out.sort_values(["models", "family"], ascending=[False, True]).reset_index(drop=True)


def zoo_overview(zoo) -> dict:
    """Headline numbers of the zoo audit: counts, share uneven, share fixable by a nearby size, sides."""
    ok = zoo[zoo["status"] == "ok"]
    uneven = ok[ok["n_uneven"] > 0]
    sides = uneven["extra_sides"].value_counts()
    return {
        "timm_version": zoo.attrs.get("timm_version", "?"),
        "models": int(len(zoo)),
        "audited": int(len(ok)),
        "build_failed": int((zoo["status"] == "build_failed").sum()),
        "forward_failed": int((zoo["status"] == "forward_failed").sum()),
        "with_padding": int((ok["n_padding_layers"] > 0).sum()),
        "uneven_at_default": int(len(uneven)),
        "share_uneven": round(len(uneven) / max(len(ok), 1), 3),
        "uneven_fixed_by_nearest_size": int(uneven["nearest_even_size"].notna().sum()),
        "even_at_default_or_nearest": int(even_at_default_or_nearest(ok).sum()),
        "extra_sides_counts": {k or "none": int(v) for k, v in sides.items()},
    }


def zoo_side_group(zoo, extra_sides: str = "bottom,right", top: int = 6) -> dict:
    """The audited architectures whose uneven layers read more padding on ``extra_sides``: how many, how many
    are timm ``tf_`` ports, and the ``top`` families among them (largest first)."""
    ok = zoo[zoo["status"] == "ok"]
    group = ok[(ok["n_uneven"] > 0) & (ok["extra_sides"] == extra_sides)]
    return {"extra_sides": extra_sides, "architectures": int(len(group)), "tf_ports": int(group["tf_port"].sum()),
            "families": {k: int(v) for k, v in group["family"].value_counts().head(top).items()}}

