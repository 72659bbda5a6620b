"""Benchmarks: ``python -m padlib bench`` prints one ``name=value`` line per figure.

Performance is reported as ratios measured in one run on the same images (e.g. scan time / plain forward
time), so the figures mean the same on any machine. Chapters add their benchmarks to ``BENCHMARKS``.
"""
from __future__ import annotations

import time

import torch


def time_call(fn, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of ``fn()`` in seconds (one warm-up call first)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_forward() -> dict:
    """Reference figure: plain MobileNetV2 forward throughput on 32 probe images at 224 px on this machine."""
    from .data import probe_images
    from .models import load_model

    model = load_model("mobilenet_v2")
    x = probe_images(32, model=model).tensor()
    with torch.no_grad():
        seconds = time_call(lambda: model(x), repeats=2)
    return {"mobilenet_v2_forward_images_per_s": round(32 / seconds, 1)}


def bench_zoo_audit() -> dict:
    """Chapter 4: median seconds to zoo-audit one timm architecture (meta build + trace + even-size search)."""
    from .audit import bench_zoo_audit as run

    return run()


def bench_pan_scan() -> dict:
    """Chapter 1: PAN scan time and peak memory as ratios to a plain forward (see padlib.pans.bench_pan_scan)."""
    from .pans import bench_pan_scan as run

    return run()


def bench_ablation() -> dict:
    """Chapter 3: ablation hook cost as ratios to a plain forward (see padlib.ablation.bench_ablation)."""
    from .ablation import bench_ablation as run

    return run()


def bench_data_free() -> dict:
    """Chapter 2: data-free PAN prediction and mean-kernel asymmetry as ratios to a plain forward."""
    from .kernels import bench_data_free as run

    return run()


def bench_padding_schemes() -> dict:
    """Chapter 5: training-step time per padding scheme / zero padding (padding_module_step_overhead, ...)."""
    from .padding_layers import bench_scheme_step_overhead as run

    return run()


BENCHMARKS = [bench_forward, bench_zoo_audit, bench_pan_scan, bench_ablation, bench_data_free]
BENCHMARKS.append(bench_padding_schemes)


def main(only=None) -> int:
    torch.manual_seed(0)
    for bench in BENCHMARKS:
        if only and not any(o in bench.__name__ for o in only):
            continue
        for name, value in bench().items():
            print(f"{name}={value}", flush=True)
    return 0
