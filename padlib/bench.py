"""Benchmarks (``make bench``): each a ratio measured in one run, printed as ``name=value`` lines."""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from .data import probe_images
from .experiments.digits import digits_on_canvas
from .experiments.training import interleaved_step_cost
from .experiments.zoo import audit_zoo_model
from .interventions import ABLATION_REGIONS, ablate_channels, channel_means, model_logits
from .kernels import data_free_pans, mean_kernel_asymmetry
from .layers.base import convert_padding
from .layers.schemes import ALL_SCHEMES
from .models import load_model
from .padding import padded_convs
from .pans import find_pans, scan_pans
from .tiling import border_reach


def bench_padding_schemes(schemes=ALL_SCHEMES[1:], batch_size: int = 64, repeats: int = 12,
                               threads: int | None = 1, chapter_model: tuple = ("padding_module",)) -> dict:
    """Training-step time (forward, backward, Adam step) with each scheme / with zero padding; same model, batch.

    The model is a fixed small ResNet-style network (width 16, two stages) on a batch of digits on a 32 px
    canvas, on ``threads`` CPU threads (the chapter's default, 1), in the memory format :func:`padlib.experiments.training.train`
    uses ((N, C, H, W) on CPU, :func:`padlib.experiments.training.training_memory_format`), timed by
    :func:`padlib.experiments.training.interleaved_step_cost` (steps of all schemes interleaved; per scheme the median over
    ``repeats`` rounds of its step time over zero's in the same round). The schemes in ``chapter_model`` are also
    timed on chapter 5's default network and data (VGG-style, width 8, three stages, 12 px digits on 24 px
    textured canvases) against zero padding on it (``..._vgg`` lines): what the chapter's reader pays. The cost is
    reported as measured; chapter 5 puts it next to the accuracy the scheme buys.
    """

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        data = digits_on_canvas(batch_size, canvas_size=32, digit_size=16, seed=0)
        chapter_data = digits_on_canvas(batch_size, canvas_size=24, digit_size=12, seed=0, background="texture",
                                        border_fraction=0.2, cut_fraction=0.3)

        def ratios(names, suffix, model="resnet", data=data):
            if not names:
                return {}
            kwargs = {"width": 16, "depth": 2} if model == "resnet" else {"width": 8, "depth": 3}
            cost = interleaved_step_cost(["zero", *names], data, model, kwargs, batch_size, repeats)
            return {f"{s}_step_overhead{suffix}": round(float(r), 3)
                    for s, r in zip(cost["scheme"], cost["ratio_to_zero"]) if s != "zero"}

        out = ratios(schemes, "")
        out.update(ratios(chapter_model, "_vgg", model="vgg", data=chapter_data))
    finally:
        torch.set_num_threads(old_threads)
    return out


def bench_zoo_audit(n_models: int = 24) -> dict:
    """Median seconds to zoo-audit one timm architecture (build on meta + trace + even-size search),
    over ``n_models`` names spread evenly through timm.list_models()."""
    import timm

    names = timm.list_models()
    step = max(len(names) // n_models, 1)
    sample = names[::step][:n_models]
    rows = [audit_zoo_model(n) for n in sample]
    return {"audit_seconds_per_model": round(statistics.median(r["seconds"] for r in rows), 3),
            "audit_cpu_seconds_per_model": round(statistics.median(r["cpu_seconds"] for r in rows), 3)}


_PEAK_SCRIPT = r"""
import sys, torch, padlib
from padlib.pans import find_pans
torch.set_num_threads(int(sys.argv[2]))
model = padlib.load_model("mobilenet_v2")
images = padlib.probe_images(int(sys.argv[1]), model=model)
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
warm = padlib.probe_images(16, model=model, seed=1).tensor()
find_pans(model, warm, batch_size=16, progress=False)  # warm-up at full batch size: allocator, imports
del warm
before = rss("VmRSS:")
try:
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
except OSError:
    pass
find_pans(model, images, batch_size=16, progress=False)  # the default scan: observed, null, reference
print(rss("VmHWM:") - before)
"""


def bench_pan_scan() -> dict:
    """PAN scan cost on mobilenet_v2 at 224 px, 64 probe images (one tensor), all measured in this one run.

    Every time is the best of three, the calls interleaved with a plain forward of the same tensor (batch 16),
    which damps the noise of a shared machine.
    ``pan_scan_default_overhead``: the default ``find_pans`` (observed pass, circular null, random-init
    reference: two random-init copies scanned on the first REFERENCE_IMAGES of the 64 images, their BatchNorm
    computed in that pass)
    / the plain forward. The cost a user waits for.
    ``pan_scan_overhead``: ONE observed pass with the thresholds given and no reference (``find_pans(...,
    tau=..., reference=None)``: hooks, streamed sums, replicate border strips and the table) / forward.
    ``pan_scan_with_null_overhead``: (observed pass + circular null pass) / forward, i.e. the older default,
    the padding-caused verdict alone (``reference=None``).
    ``pan_scan_peak_mb_ratio``: peak extra resident memory of a default scan of 256 images / of 32 images,
    each in a fresh process after a full-batch warm-up (Linux VmHWM reset through /proc/self/clear_refs), with
    a fixed glibc mmap threshold so that the peak measures live memory rather than allocator history.
    """
    import subprocess
    import sys


    model = load_model("mobilenet_v2")
    x = probe_images(64, model=model).tensor()
    batch = 16

    def forward():
        with torch.no_grad():
            for s in range(0, len(x), batch):
                model(x[s:s + batch])

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    full = scan_pans(model, x, batch_size=batch, progress=False)  # calibration, also the warm-up
    tau, tau_c = full.tau, full.tau_corner
    circular = convert_padding(model, "circular")
    t_fwd, t_scan, t_null, t_default = [], [], [], []
    for _ in range(3):
        t_fwd.append(timed(forward))
        t_scan.append(timed(lambda: scan_pans(model, x, tau=tau, tau_corner=tau_c, batch_size=batch,
                                              progress=False, reference=None)))
        t_null.append(timed(lambda: scan_pans(circular, x, tau=tau, tau_corner=tau_c, batch_size=batch,
                                              progress=False, reference=None)))
        t_default.append(timed(lambda: find_pans(model, x, batch_size=batch, progress=False)))
    fwd = min(t_fwd)
    peaks = {}
    # glibc's dynamic mmap threshold makes RSS peaks depend on allocation history; a fixed threshold returns
    # every large block at once, so the peak is the live memory (same settings for both sizes)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="131072", MALLOC_ARENA_MAX="2")
    for n in (32, 256):
        out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(n), str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True, env=env)
        peaks[n] = float(out.stdout.strip().splitlines()[-1])
    return {
        "pan_scan_default_overhead": round(min(t_default) / fwd, 3),
        "pan_scan_overhead": round(min(t_scan) / fwd, 3),
        "pan_scan_with_null_overhead": round((min(t_scan) + min(t_null)) / fwd, 3),
        "pan_scan_peak_mb_32": round(peaks[32], 1),
        "pan_scan_peak_mb_256": round(peaks[256], 1),
        "pan_scan_peak_mb_ratio": round(peaks[256] / max(peaks[32], 1.0), 3),
    }


def bench_data_free() -> dict:
    """Chapter 2: the data-free PAN prediction and the mean-kernel asymmetry of MobileNetV2, as ratios to a plain
    forward of 32 probe images at 224 px measured in the same run (best of 2): what the weights-only view costs."""

    model = load_model("mobilenet_v2")
    x = probe_images(32, model=model).tensor()

    def forward():
        with torch.no_grad():
            model(x)

    t_fwd = time_call(forward, repeats=2)
    t_pred = time_call(lambda: data_free_pans(model, tau=2.0), repeats=2)
    t_asym = time_call(lambda: mean_kernel_asymmetry(model, n_boot=200), repeats=2)
    return {"data_free_pans_over_forward32": round(t_pred / t_fwd, 3),
            "mean_kernel_asymmetry_over_forward32": round(t_asym / t_fwd, 3)}


def bench_ablation() -> dict:
    """Cost of the ablation hooks on mobilenet_v2 (32 probe images, batch 8), as ratios to a plain forward
    measured in the same run: 16% of every padded conv's channels mean-ablated everywhere / on the ring."""

    model = load_model("mobilenet_v2")
    x = probe_images(32, model=model).tensor()
    layers = {name: conv.out_channels for name, conv in padded_convs(model)}
    rng = np.random.default_rng(0)
    chosen = [(name, int(c)) for name, n in layers.items() for c in rng.choice(n, max(1, n * 16 // 100), replace=False)]
    means = channel_means(model, x, list(layers))
    plain = time_call(lambda: model_logits(model, x), repeats=2)
    out = {}
    for region in ABLATION_REGIONS:
        with ablate_channels(model, chosen, "mean", region, means=means):
            out[f"ablation_{region}_hook_overhead"] = round(time_call(lambda: model_logits(model, x), repeats=2) / plain, 3)
    return out


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

    model = load_model("mobilenet_v2")
    x = probe_images(32, model=model).tensor()
    with torch.no_grad():
        seconds = time_call(lambda: model(x), repeats=2)
    return {"mobilenet_v2_forward_images_per_s": round(32 / seconds, 1)}


def bench_border_reach() -> dict:
    """:func:`padlib.border_reach` on MobileNetV2's pretrained stride-8 trunk (``features[:7]``, a dense map of 32
    channels) with 4 probe images of 256 px, 8 tiles of 128 px each, batch 8, as a ratio to the plain forwards it
    needs, timed in the same run (interleaved, best of 5): one tile (the stride), each whole image, its 8 tiles in one batch.
    Also the margin it recommends at 1% (input px), a reading of that trunk."""
    full = load_model("mobilenet_v2")
    model = full.features[:7]
    x = probe_images(4, size=256, model=full).tensor()

    def plain():
        with torch.no_grad():
            model(x[:1, :, :128, :128])
            for i in range(len(x)):
                model(x[i:i + 1])
                model(torch.cat([x[i:i + 1, :, 8:136, 8:136]] * 8))

    def reach():
        return border_reach(model, x, tile=128, tiles_per_image=8, batch_size=8)

    r = reach()  # also the warm-up
    plain()
    t_plain, t_reach = [], []
    for _ in range(5):  # interleaved, the best of each: damps a shared machine's noise
        for times, fn in ((t_plain, plain), (t_reach, reach)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return {"border_reach_over_forwards": round(min(t_reach) / min(t_plain), 3),
            "border_reach_margin_px_mobilenet_v2_stride8": r.margin if r.margin is not None else "beyond the tile"}


def _timed_launch(args: list, processes: int = 1, threads: int | None = None) -> float:
    """Wall seconds from launch to exit of ``python <args>``, in one process or under ``torchrun --standalone
    --nproc_per_node <processes>``, each process on ``threads`` OpenMP threads (default: the machine's cores shared
    among the processes), outside any torchrun group this process may be in."""
    import subprocess
    import sys

    threads = threads or max(1, (os.cpu_count() or 1) // processes)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else []
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *launcher, *args], env=dict(env, OMP_NUM_THREADS=str(threads)), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_distributed_scan(n_images: int = 32, size: int = 160, batch_size: int = 8) -> dict:
    """The PAN scan command in two processes under ``torchrun`` (CPU, gloo) against one process, on the same images:
    ``padlib scan mobilenet_v2 --images 32 --size 160 --batch-size 8`` (4 batches, 2 per process; observed pass,
    circular null, random-init reference with one copy per process).

    ``scan_2proc_vs_1proc_seconds``: wall time of ``torchrun --standalone --nproc_per_node 2 -m padlib scan ...``
    over that of ``python -m padlib scan ...``, both from launch to exit, so the start-up is included in both (Python,
    torch and the model per process, and for torchrun its agent and the gloo rendezvous). The same cores either
    way: the one process runs on all the machine's cores, each of the two on half of them (OMP_NUM_THREADS). The
    overhead of two processes on one machine: each imports torch and loads the model, the images are split by whole
    batches, the sums are all-reduced once per pass and the selectivity reference gathered once, and each process
    scans one of the two random-init reference copies on all 8 reference images; on 2 cores expect about 1.
    ``scan_1proc_seconds`` and ``scan_2proc_seconds`` are the two times;
    ``scan_2proc_max_rel_diff``: per numeric column, the largest difference between the two tables over the column's
    largest magnitude, the largest of those (the verdicts must be equal). With the same threads per process this is
    the summation order alone (about 2e-7, tests/test_distributed_scan.py); here the one process's float32 kernels
    also run on another number of threads, which rounds differently by itself."""
    import tempfile

    import pandas as pd

    args = ["-m", "padlib", "scan", "mobilenet_v2", "--images", str(n_images), "--size", str(size),
            "--batch-size", str(batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        seconds = {"1proc": _timed_launch([*args, "--out", f"{tmp}/one.csv"]),
                   "2proc": _timed_launch([*args, "--out", f"{tmp}/two.csv"], processes=2)}
        one, two = pd.read_csv(f"{tmp}/one.csv"), pd.read_csv(f"{tmp}/two.csv")
    if not (one["is_pan"] == two["is_pan"]).all():
        raise AssertionError("the 2-process scan's verdicts differ from the 1-process scan's")
    num = [c for c in one.columns if one[c].dtype.kind == "f"]
    a, b = one[num].to_numpy(), two[num].to_numpy()
    scale = np.nanmax(np.abs(a), axis=0)
    diff = np.nanmax(np.abs(a - b), axis=0) / np.where(scale > 0, scale, 1.0)
    return {"scan_1proc_seconds": round(seconds["1proc"], 2), "scan_2proc_seconds": round(seconds["2proc"], 2),
            "scan_2proc_vs_1proc_seconds": round(seconds["2proc"] / seconds["1proc"], 3),
            "scan_2proc_max_rel_diff": float(f"{np.nanmax(diff):.2g}")}


def bench_distributed_train(epochs: int = 2) -> dict:
    """``padlib train`` (chapter 5's network and canvases, zero padding, seed 0, ``epochs`` epochs of 2500 canvases
    in batches of 64) in two processes under ``torchrun`` against one process, launch to exit as in
    :func:`bench_distributed_scan` (the same cores either way), and one process on one thread as the yardstick of
    rounding.

    ``train_2proc_vs_1proc_seconds``: the ratio of the two wall times. Each step of a small network on 32-image
    halves of the batch is short, so the per-step all-reduces of the gradients and of the BatchNorm statistics weigh
    more than in a scan: expect above 1 on 2 cores; processes pay off where a step is long (large networks and
    images, one GPU per process). ``train_2proc_max_rel_loss_diff``: the largest relative difference of the two
    runs' per-step losses; ``train_threads_max_rel_loss_diff``: the same between one process on all cores and one
    on one thread. Training amplifies float32 rounding step after step, so both grow with the steps; the first
    should be of the order of the second (``*_test_accuracy``: the three runs' final test accuracy)."""
    import json
    import tempfile

    import pandas as pd

    args = ["-m", "padlib", "train", "--scheme", "zero", "--seed", "0", "--epochs", str(epochs)]
    name = f"vgg-zero-seed0-e{epochs}"
    runs = {"1proc": {}, "2proc": {"processes": 2}, "1thread": {"threads": 1}}
    with tempfile.TemporaryDirectory() as tmp:
        seconds, loss, accuracy = {}, {}, {}
        for key, how in runs.items():
            seconds[key] = _timed_launch([*args, "--out", f"{tmp}/{key}"], **how)
            loss[key] = pd.read_csv(f"{tmp}/{key}/{name}/history.csv")["loss"].to_numpy()
            accuracy[key] = json.loads(open(f"{tmp}/{key}/{name}/metrics.json").read())["test_accuracy"]

    def worst(a, b):
        return float(f"{np.max(np.abs(a - b) / np.abs(a)):.2g}")

    return {"train_1proc_seconds": round(seconds["1proc"], 2), "train_2proc_seconds": round(seconds["2proc"], 2),
            "train_2proc_vs_1proc_seconds": round(seconds["2proc"] / seconds["1proc"], 3),
            "train_2proc_max_rel_loss_diff": worst(loss["1proc"], loss["2proc"]),
            "train_threads_max_rel_loss_diff": worst(loss["1proc"], loss["1thread"]),
            **{f"train_{k}_test_accuracy": accuracy[k] for k in runs}}


BENCHMARKS = [bench_forward, bench_zoo_audit, bench_pan_scan, bench_ablation, bench_data_free, bench_padding_schemes,
              bench_border_reach, bench_distributed_scan, bench_distributed_train]


def main(only=None) -> int:
    torch.manual_seed(0)
    for bench in BENCHMARKS:
        if only and not any(o in bench.__name__ for o in only):
            continue
        for name, value in bench().items():
            print(f"{name}={value}", flush=True)
    return 0

