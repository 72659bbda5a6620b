"""Training small networks per padding scheme and seed, in parallel processes; learning curves and run statistics."""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .._distributed import all_reduce_sum, synced_batchnorm, world
from .._hooks import eval_mode
from ..errors import PadlibError, check_type
from ..experiments.digits import ImageSet
from ..experiments.smallnets import small_model
from ..layers.base import convert_padding
from ..layers.padding_module import padding_module_loss
from ..models import conv_weights_to, in_memory_format
from ..pans import find_pans
from ..stats import holm_adjust, t_interval, t_test


def training_memory_format(device) -> torch.memory_format:
    """The memory format padlib trains in: channels-last on CUDA, (N, C, H, W) on CPU, always.

    On CPU the channels-last weight gradient of oneDNN's thin 1x1 stride-2 convolutions (a ResNet shortcut from
    3 or 4 channels) corrupts the heap on some CPUs (seen: AMD EPYC family 25, torch 2.14.1, oneDNN 3.12): an abort,
    a bus error or a hang, depending on the run. Which shapes are affected depends on the CPU and the build, so
    no channels-last backward pass runs on CPU at all; (N, C, H, W) costs 15-50% more per step here."""
    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


def _check_channels_last(channels_last, device) -> torch.memory_format:
    """The memory format for a training pass: :func:`training_memory_format` unless ``channels_last`` is given;
    ``channels_last=True`` on CPU is refused (see there)."""
    if channels_last is None:
        return training_memory_format(device)
    check_type("channels_last", channels_last, bool)
    if channels_last and torch.device(device).type == "cpu":
        raise PadlibError("channels_last=True is refused on CPU: oneDNN's channels-last weight gradient corrupts the "
                          "heap on some CPUs; leave channels_last=None (NCHW on CPU, channels-last on CUDA)")
    return torch.channels_last if channels_last else torch.contiguous_format


def training_step(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor,
                  channels_last: bool | None = None) -> tuple[float, float]:
    """One step on the main loss plus any Padding Module losses; returns (main loss, module loss).

    ``channels_last``: None (default) trains in :func:`training_memory_format` for ``x``'s device: channels-last
    on CUDA, (N, C, H, W) on CPU. The model's conv weights are put in that format too (a conv runs channels-last
    when its input *or* its weight is), so a model left in channels-last by other code still trains safely.
    """

    fmt = _check_channels_last(channels_last, x.device)
    if x.dim() == 4:
        x = in_memory_format(x, fmt)
    conv_weights_to(model, fmt)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    module_loss = padding_module_loss(model)
    total = loss if module_loss is None else loss + module_loss
    total.backward()
    optimizer.step()
    return loss.item(), module_loss.item() if module_loss is not None else 0.0


@torch.no_grad()
def predict_labels(model: nn.Module, images: torch.Tensor, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """Arg-max predictions of ``model`` (eval mode) for (N, C, H, W) images, in the training memory format."""

    fmt = training_memory_format(device) if images.dim() == 4 else torch.contiguous_format
    with eval_mode(model):
        out = [model(in_memory_format(images[s:s + batch_size].to(device), fmt)).argmax(1).cpu()
               for s in range(0, len(images), batch_size)]
    return torch.cat(out)


def evaluate(model: nn.Module, data: ImageSet, target: str = "label", batch_size: int = 256, device="cpu") -> pd.DataFrame:
    """One row per test sample: its metadata, the target, the prediction and whether it is correct."""
    y = data.targets(target)
    pred = predict_labels(model, data.images, batch_size, device)
    df = data.meta.copy()
    df["target"], df["prediction"] = y.numpy(), pred.numpy()
    df["correct"] = df["target"] == df["prediction"]
    return df


@dataclass
class TrainResult:
    """A training run: the model, one history row per step (loss, module loss, seconds), evaluations."""

    model: nn.Module
    history: pd.DataFrame
    evaluations: pd.DataFrame

    @property
    def seconds_per_step(self) -> float:
        """Median wall time of a training step (the first step, which warms caches, excluded)."""
        s = self.history["seconds"].to_numpy()
        return float(np.median(s[1:] if len(s) > 1 else s))


def train(model: nn.Module, data: ImageSet, target: str = "label", epochs: float = 2, batch_size: int = 64,
          lr: float = 3e-3, seed: int = 0, device="cpu", progress: bool | str = True,
          eval_data: ImageSet | None = None, evals_per_epoch: int = 1) -> TrainResult:
    """Train ``model`` in place with Adam (cosine-decayed learning rate), deterministically for a given seed.

    The sample order depends only on ``seed``. ``epochs`` may be fractional. With ``eval_data`` the model is
    evaluated (accuracy on ``target``) before training and ``evals_per_epoch`` times per epoch.

    In a process group (``torchrun``), ``batch_size`` is the global batch: each of the N processes takes every
    N-th sample of it (DistributedSampler's rule, applied to the one-process batch), the model runs under
    DistributedDataParallel and its BatchNorms normalise by the global batch, so the run is the one-process run
    up to floating-point rounding. Only rank 0 evaluates; the history's losses are the global batch's.
    """
    from tqdm.auto import tqdm

    check_type("model", model, nn.Module)
    check_type("data", data, ImageSet)
    check_type("epochs", epochs, (int, float))
    check_type("batch_size", batch_size, int)
    if epochs <= 0 or batch_size < 1:
        raise PadlibError(f"epochs must be > 0 and batch_size >= 1, got {epochs} and {batch_size}")
    rank, size = world()
    if batch_size % size or min(batch_size, len(data)) % size:
        raise PadlibError(f"batch_size {batch_size} is the global batch and must split evenly over the {size} "
                          f"processes; use a multiple of {size}")
    y_all = data.targets(target)
    n = len(data)
    steps_per_epoch = max(math.ceil(n / batch_size), 1)
    total_steps = max(int(round(epochs * steps_per_epoch)), 1)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.to(device)
    conv_weights_to(model, training_memory_format(device))  # before a DDP wrapper takes views of the weights
    net = model
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        dev = torch.device(device)
        net = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / total_steps, 1))))
    eval_every = max(steps_per_epoch // max(evals_per_epoch, 1), 1)
    history, evals = [], []

    def run_eval(step):
        if eval_data is not None and rank == 0:
            acc = float(evaluate(model, eval_data, target, device=device)["correct"].mean())
            evals.append({"step": step, "epoch": step / steps_per_epoch, "accuracy": acc})

    run_eval(0)
    order = torch.randperm(n, generator=gen)
    pos = 0
    desc = progress if isinstance(progress, str) else "train"
    with synced_batchnorm(model):
        for step in tqdm(range(1, total_steps + 1), desc=desc, disable=not progress or rank > 0, leave=False):
            if pos + batch_size > n and pos > 0:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos:pos + batch_size][rank::size]
            pos += batch_size
            x, y = data.images[idx].to(device), y_all[idx].to(device)
            t0 = time.perf_counter()
            loss, module_loss = training_step(net, opt, x, y)
            if size > 1:  # the global batch's losses (equal shares: the mean of the ranks' means)
                loss, module_loss = (v / size for v in all_reduce_sum(torch.tensor([loss, module_loss])).tolist())
            seconds = time.perf_counter() - t0
            sched.step()
            history.append({"step": step, "epoch": step / steps_per_epoch, "loss": loss, "module_loss": module_loss,
                            "seconds": seconds})
            if step % eval_every == 0 or step == total_steps:
                run_eval(step)
    model.eval()
    return TrainResult(model, pd.DataFrame(history), pd.DataFrame(evals, columns=["step", "epoch", "accuracy"]))


# ---------------------------------------------------------------------------------------------------------
# comparing padding schemes


@dataclass
class SchemeRun:
    """One (scheme, seed) training run; ``init_model`` is the same network before training."""

    scheme: str
    seed: int
    init_model: nn.Module
    model: nn.Module
    result: TrainResult
    epochs: float | None = None       # the epochs it was trained for
    cpu_seconds: float = float("nan")  # CPU time of the whole run (building, training, evaluating), in its process


def _train_job(job: dict) -> SchemeRun:
    """One (scheme, seed) run of :func:`train_plan`; a top-level function so that worker processes can run it."""

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    start = time.process_time()
    scheme, seed, data = job["scheme"], job["seed"], job["train_data"]
    base = small_model(job["model"], data, num_classes=job["num_classes"], seed=seed, **job["model_kwargs"])
    init = convert_padding(base, scheme)
    net = copy.deepcopy(init)
    result = train(net, data, job["target"], job["epochs"], job["batch_size"], job["lr"], seed, job["device"],
                   progress=False, eval_data=job["eval_data"], evals_per_epoch=job["evals_per_epoch"])
    return SchemeRun(scheme, seed, init.to(job["device"]).eval(), net, result, float(job["epochs"]),
                     time.process_time() - start)


def default_workers(device="cpu", threads: int | None = None, most: int = 4) -> int:
    """Worker processes for :func:`train_schemes`: on CPU one per ``threads`` of the cores this process may run
    on, at most ``most`` (each worker holds its own torch, a few hundred MB); on other devices 1."""
    if str(device) != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))  # the cores allowed to this process, not the host's
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(min(cores // max(threads or torch.get_num_threads(), 1), most), 1)


def train_schemes(schemes, seeds, train_data: ImageSet, model: str = "vgg", model_kwargs: dict | None = None,
                  target: str = "label", epochs: float = 2, batch_size: int = 64, lr: float = 3e-3,
                  device="cpu", progress: bool = True, eval_data: ImageSet | None = None,
                  evals_per_epoch: int = 1, workers: int = 1) -> list[SchemeRun]:
    """Train one network per (scheme, seed): for a seed, every scheme starts from the same initial weights
    (the seeded base network converted with :func:`padlib.layers.base.convert_padding`) and sees the same batches.

    ``schemes`` may be one name or a list; ``seeds`` one int or a list. ``workers`` > 1 trains that many runs
    at a time in separate processes, each on this process's number of torch threads: the runs are
    independent and seeded, so the networks are the same as with ``workers=1``; only their step times then
    include the sharing of the machine (measure cost with :func:`interleaved_step_cost` instead).
    Uneven designs (more seeds for some schemes, longer runs) go through :func:`train_plan`.
    """
    schemes = [schemes] if isinstance(schemes, str) else schemes
    seeds = [seeds] if isinstance(seeds, int) else seeds
    check_type("schemes", schemes, (list, tuple), "a scheme name or a list of them")
    check_type("seeds", seeds, (list, tuple, range), "a seed or a list of seeds")
    if not schemes or not len(seeds):
        raise PadlibError("train_schemes needs at least one scheme and one seed")
    return train_plan([(s, seed, epochs) for seed in seeds for s in schemes], train_data, model, model_kwargs, target,
                      batch_size, lr, device, progress, eval_data, evals_per_epoch, workers)


def _job_cost(scheme: str, epochs: float) -> float:
    """A rough relative cost of one run (the Padding Module's step costs about twice zero padding's): the pool
    starts the longest runs first, so that no long run is left alone at the end while the other cores idle."""
    return float(epochs) * (2.0 if scheme == "padding_module" else 1.0)


def train_plan(plan, train_data: ImageSet, model: str = "vgg", model_kwargs: dict | None = None,
               target: str = "label", batch_size: int = 64, lr: float = 3e-3, device="cpu", progress: bool = True,
               eval_data: ImageSet | None = None, evals_per_epoch: int = 1, workers: int = 1) -> list[SchemeRun]:
    """Train one network per ``(scheme, seed, epochs)`` of ``plan``, in plan order, as :func:`train_schemes` does
    (same seed = same initial weights and batch order for every scheme, whatever the epochs), in one pool of
    ``workers`` processes: a design with more seeds for some schemes, or with longer runs beside the main
    ones, shares one pool, the longest runs started first."""

    check_type("plan", plan, (list, tuple), "a list of (scheme, seed, epochs)")
    check_type("workers", workers, int)
    if not plan:
        raise PadlibError("train_plan needs at least one (scheme, seed, epochs)")
    if workers < 1:
        raise PadlibError(f"workers must be >= 1, got {workers}")
    check_type("train_data", train_data, ImageSet)
    for item in plan:
        if not (isinstance(item, (list, tuple)) and len(item) == 3):
            raise PadlibError(f"a plan entry is (scheme, seed, epochs), got {item!r}")
        check_type("seed", item[1], int)
    num_classes = train_data.n_classes(target) if target != "label" else None
    common = dict(train_data=train_data, model=model, model_kwargs=dict(model_kwargs or {}), num_classes=num_classes,
                  target=target, batch_size=batch_size, lr=lr, device=str(device), eval_data=eval_data,
                  evals_per_epoch=evals_per_epoch, threads=torch.get_num_threads())
    jobs = [dict(common, scheme=s, seed=seed, epochs=e) for s, seed, e in plan]
    order = sorted(range(len(jobs)), key=lambda i: -_job_cost(jobs[i]["scheme"], jobs[i]["epochs"]))
    return process_map(_train_job, jobs, workers, progress, f"{target}: schemes x seeds", order)


def process_map(fn, jobs: list, workers: int, progress: bool = True, desc: str = "runs", order=None) -> list:
    """``[fn(job) for job in jobs]``, in ``workers`` spawned processes when more than one (``fn`` a top-level
    function); ``order``: the job indices in the order to start them (longest first keeps the cores busy to the
    end). Results come back in job order; a dead worker gives one line instead of a pool traceback."""
    from tqdm.auto import tqdm

    workers = min(workers, len(jobs))
    if workers <= 1:
        return [fn(j) for j in tqdm(jobs, desc=desc, disable=not progress)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    order = range(len(jobs)) if order is None else order
    # spawned, not forked: a fork of a process whose torch thread pools already ran can deadlock
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {i: pool.submit(fn, jobs[i]) for i in order}
            for _ in tqdm(as_completed(futures.values()), total=len(jobs), desc=f"{desc} ({workers} processes)",
                          disable=not progress):
                pass
            return [futures[i].result() for i in range(len(jobs))]  # in job order
    except BrokenProcessPool as e:
        raise PadlibError(f"a training worker process died ({e}); out of memory? retry with workers=1") from None


def run_cost(runs: list[SchemeRun]) -> pd.DataFrame:
    """CPU seconds per run, by scheme and epochs (median and total over its runs): what each run costs,
    whoever else shared the machine."""
    df = pd.DataFrame([{"scheme": r.scheme, "epochs": r.epochs, "seed": r.seed, "cpu_seconds": r.cpu_seconds}
                       for r in runs])
    return (df.groupby(["scheme", "epochs"], sort=False)["cpu_seconds"]
            .agg(runs="count", median="median", total="sum").reset_index())


def interleaved_step_cost(schemes, data: ImageSet, model: str = "vgg", model_kwargs: dict | None = None,
                          batch_size: int = 64, repeats: int = 12, seed: int = 0, channels_last: bool | None = None,
                          device="cpu") -> pd.DataFrame:
    """Training-step time (forward, backward, Adam step) per scheme on one batch of ``data``, and its ratio to
    zero padding (when zero is among the schemes), from ``repeats`` rounds after one warm-up round.

    Each round runs one step of every scheme back to back (in reversed order every other round, so that no
    scheme always follows the same one); a scheme's ratio is the median over rounds of its step time over zero
    padding's in the same round, so a slow spell of the machine moves both and cancels. The same network
    (``model``, seeded) converted to each scheme, in one process: the clean cost measure when the training
    runs themselves shared the machine."""

    schemes = [schemes] if isinstance(schemes, str) else list(schemes)
    check_type("data", data, ImageSet)
    check_type("repeats", repeats, int)
    if not schemes or repeats < 1:
        raise PadlibError("interleaved_step_cost needs at least one scheme and repeats >= 1")
    x, y = data.images[:batch_size].to(device), data.targets("label")[:batch_size].to(device)
    base = small_model(model, data, seed=seed, **dict(model_kwargs or {}))  # (seeds torch itself)
    nets = {s: convert_padding(base, s).to(device) for s in schemes}
    opts = {s: torch.optim.Adam(m.parameters(), lr=1e-3) for s, m in nets.items()}
    times = {s: [] for s in schemes}
    for rep in range(repeats + 1):
        for s in (schemes if rep % 2 else schemes[::-1]):
            t0 = time.perf_counter()
            training_step(nets[s], opts[s], x, y, channels_last=channels_last)
            if rep:  # the first round warms caches
                times[s].append(time.perf_counter() - t0)
    out = pd.DataFrame({"scheme": schemes, "seconds_per_step": [float(np.median(times[s])) for s in schemes]})
    if "zero" in times:
        zero = np.asarray(times["zero"])
        out["ratio_to_zero"] = [float(np.median(np.asarray(times[s]) / zero)) for s in schemes]
    return out


def runs_predictions(runs: list[SchemeRun], test: ImageSet, target: str = "label", device="cpu") -> pd.DataFrame:
    """Per test sample and run: metadata, prediction, correct; with ``scheme`` and ``seed`` columns."""
    frames = []
    for r in runs:
        df = evaluate(r.model, test, target, device=device)
        df.insert(0, "seed", r.seed)
        df.insert(0, "scheme", r.scheme)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def accuracy_by_seed(predictions: pd.DataFrame, by: str | None = None, bins=None) -> pd.DataFrame:
    """Accuracy per (scheme, seed[, group]); ``bins`` cuts column ``by`` (e.g. border_distance) into ranges."""
    df = predictions
    keys = ["scheme", "seed"]
    if by is not None:
        df = df.copy()
        if bins is not None:
            df[by] = pd.cut(df[by], bins=bins, right=False)
        keys.append(by)
    return df.groupby(keys, observed=True, sort=False)["correct"].mean().rename("accuracy").reset_index()


def accuracy_summary(per_seed: pd.DataFrame, group: str | None = None) -> pd.DataFrame:
    """Mean, std and 95% t-interval of accuracy over seeds, per scheme (and group)."""
    keys = ["scheme"] + ([group] if group else [])
    rows = []
    for key, g in per_seed.groupby(keys, observed=True, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        lo, hi = t_interval(g["accuracy"])
        rows.append({**dict(zip(keys, key)), "mean": g["accuracy"].mean(), "std": g["accuracy"].std(ddof=1),
                     "ci_low": lo, "ci_high": hi, "n_seeds": len(g)})
    return pd.DataFrame(rows)


def paired_comparison(per_seed: pd.DataFrame, value: str = "accuracy", baseline: str = "zero",
                      exclude=()) -> pd.DataFrame:
    """Per scheme: the per-seed difference to ``baseline`` (same seed = same init and batches), its mean,
    95% t-interval (and its half-width), the number of seeds it wins, a two-sided paired t-test p-value and
    ``p_holm``, Holm-adjusted across the schemes of this table (the family: every scheme compared with the
    baseline). Schemes in ``exclude`` (e.g. a noise twin) are left out of the table and of the family."""
    wide = per_seed.pivot_table(index="seed", columns="scheme", values=value)
    if baseline not in wide.columns:
        raise PadlibError(f"baseline scheme '{baseline}' was not trained; schemes: {', '.join(wide.columns)}")
    rows = []
    for scheme in [s for s in per_seed["scheme"].unique() if s != baseline and s not in exclude]:
        d = (wide[scheme] - wide[baseline]).dropna().to_numpy()
        _, lo, hi, p, _ = t_test(d)
        rows.append({"scheme": scheme, f"mean_diff_vs_{baseline}": d.mean(), "ci_low": lo, "ci_high": hi,
                     "half_width": (hi - lo) / 2, "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
                     "n_seeds": len(d), "p_value": p})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm_adjust(out["p_value"])
    return out


def step_cost(runs: list[SchemeRun], baseline: str = "zero") -> pd.DataFrame:
    """Median seconds per training step per scheme and its ratio to ``baseline`` (paired by seed, then median),
    from the runs' own step times (runs trained in parallel processes shared the machine: see
    :func:`interleaved_step_cost`)."""
    df = pd.DataFrame([{"scheme": r.scheme, "seed": r.seed, "seconds_per_step": r.result.seconds_per_step}
                       for r in runs])
    if baseline not in set(df["scheme"]):
        raise PadlibError(f"step_cost needs the baseline scheme '{baseline}' among the runs; "
                          f"trained: {', '.join(dict.fromkeys(df['scheme']))}")
    base = df[df.scheme == baseline].set_index("seed")["seconds_per_step"]
    df["ratio"] = df["seconds_per_step"] / df["seed"].map(base)
    out = df.groupby("scheme", sort=False).agg(seconds_per_step=("seconds_per_step", "median"),
                                               ratio_to_zero=("ratio", "median")).reset_index()
    return out


def learning_curves(runs: list[SchemeRun]) -> pd.DataFrame:
    """The evaluations recorded during training, one row per (scheme, seed, evaluation)."""
    frames = []
    for r in runs:
        e = r.result.evaluations.copy()
        e.insert(0, "seed", r.seed)
        e.insert(0, "scheme", r.scheme)
        frames.append(e)
    return pd.concat(frames, ignore_index=True)


def curve_stats(curves: pd.DataFrame, last_fraction: float = 0.25) -> pd.DataFrame:
    """Per (scheme, seed) of :func:`learning_curves`: ``final`` (the last held-out accuracy), ``auc`` (the area
    under the learning curve over the epochs trained, divided by them: the mean held-out accuracy during
    training, which rewards learning fast) and ``late_gain`` (the least-squares slope of the accuracy over the
    last ``last_fraction`` of training times that span: how much the curve still rose at the end; about 0 once
    it is flat)."""
    check_type("last_fraction", last_fraction, float)
    if not 0 < last_fraction < 1:
        raise PadlibError(f"last_fraction must be between 0 and 1, got {last_fraction}")
    rows = []
    for (scheme, seed), g in curves.groupby(["scheme", "seed"], sort=False):
        g = g.sort_values("epoch")
        e, a = g["epoch"].to_numpy(float), g["accuracy"].to_numpy(float)
        span = e[-1] - e[0]
        auc = float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(e)) / span) if span > 0 else float(a[-1])
        late = e >= e[-1] - last_fraction * span
        gain = (float(np.polyfit(e[late], a[late], 1)[0] * last_fraction * span)
                if late.sum() >= 2 and np.ptp(e[late]) > 0 else float("nan"))
        rows.append({"scheme": scheme, "seed": seed, "final": float(a[-1]), "auc": auc, "late_gain": gain,
                     "epochs": float(e[-1])})
    out = pd.DataFrame(rows)
    out.attrs["last_fraction"] = last_fraction
    return out


def convergence_table(stats: pd.DataFrame, tolerance: float, baseline: str | None = "zero") -> pd.DataFrame:
    """Are the learning curves flat at the end? Per scheme (and ``all`` runs pooled), from :func:`curve_stats`:
    the mean ``late_gain`` over seeds with its 95% t-interval, and ``flat`` when the interval's upper end is
    below ``tolerance`` (e.g. the smallest effect the comparison resolves: what the curves still gained at
    the end could not by itself make a resolvable effect). With a ``baseline`` scheme, also the late gain minus
    the baseline's at the same seed (``vs_baseline``, with its interval): a scheme still catching up with the
    baseline (or pulling away) at the end shows there, whatever the schedule does to both."""
    check_type("tolerance", tolerance, (int, float))
    rows = []
    groups = [(s, g) for s, g in stats.groupby("scheme", sort=False)] + [("all", stats)]
    wide = stats.pivot_table(index="seed", columns="scheme", values="late_gain")
    for scheme, g in groups:
        v = g["late_gain"].dropna().to_numpy()
        lo, hi = t_interval(v)
        row = {"scheme": scheme, "late_gain": float(v.mean()) if len(v) else float("nan"), "ci_low": lo,
               "ci_high": hi, "n_runs": len(v), "flat": bool(np.isfinite(hi) and hi < tolerance)}
        if baseline in wide.columns and scheme in wide.columns and scheme != baseline:
            d = (wide[scheme] - wide[baseline]).dropna()
            dlo, dhi = t_interval(d)
            row.update(vs_baseline=float(d.mean()), vs_ci_low=dlo, vs_ci_high=dhi)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(tolerance=tolerance, last_fraction=stats.attrs.get("last_fraction"), baseline=baseline)
    return out


def slowest_to_converge(stats: pd.DataFrame, exclude=()) -> str:
    """The slowest learner: the scheme with the smallest mean area under its learning curves (``auc`` of
    :func:`curve_stats`; schemes in ``exclude`` left out), the one most likely to be still short of its plateau
    and so the one to train longer as a convergence check. (Under a cosine schedule every curve flattens at
    the end, converged or not, so the late gain alone cannot pick it.)"""
    g = stats[~stats.scheme.isin(list(exclude))].groupby("scheme", sort=False)["auc"].mean().dropna()
    if not len(g):
        raise PadlibError("slowest_to_converge needs learning curves with at least two evaluations")
    return str(g.idxmin())


def run_clock() -> dict:
    """Wall time and CPU time (this process plus its finished child processes, e.g. training workers) now: the
    start of :func:`run_time_line`."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": time.perf_counter(), "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}


def longer_training_check(per_seed: pd.DataFrame, per_seed_longer: pd.DataFrame, factor: float = 2.0,
                          baseline: str | None = "zero") -> pd.DataFrame:
    """Does training longer change the final accuracy? ``per_seed_longer`` holds runs trained ``factor`` times as
    many epochs (same schemes, seeds, data and schedule shape), ``per_seed`` the chapter's runs: per scheme the
    per-seed difference longer - chapter (paired by seed, :func:`paired_comparison` columns); an interval
    around 0 within the resolvable effect means the chapter's budget is at convergence for that scheme. With a
    ``baseline`` trained longer too, ``vs_baseline``: the same gain minus the baseline's at the same seed (how
    much longer training would move the scheme's difference to the baseline), with its per-seed values."""
    rows = []
    gains = {}
    for scheme in dict.fromkeys(per_seed_longer["scheme"]):
        both = pd.concat([per_seed[per_seed.scheme == scheme].assign(scheme="budget"),
                          per_seed_longer[per_seed_longer.scheme == scheme].assign(scheme="longer")])
        pc = paired_comparison(both, baseline="budget")
        if len(pc):
            wide = both.pivot_table(index="seed", columns="scheme", values="accuracy")
            gains[scheme] = (wide["longer"] - wide["budget"]).dropna()
            rows.append(pc.iloc[0].drop(["scheme", "p_holm"], errors="ignore").rename({"mean_diff_vs_budget": "gain"})
                        .to_dict() | {"scheme": scheme, "factor": factor,
                                      "per_seed": [round(float(v), 4) for v in gains[scheme]]})
    cols = ["scheme", "factor", "gain", "ci_low", "ci_high", "n_seeds", "p_value", "per_seed"]
    out = pd.DataFrame(rows)[cols] if rows else pd.DataFrame(columns=cols)
    if baseline is not None and baseline in gains and len(out):
        rel = {s: (g - gains[baseline]).dropna() for s, g in gains.items()}
        out["vs_baseline"] = [float(rel[s].mean()) if len(rel[s]) and s != baseline else float("nan")
                              for s in out["scheme"]]
        out["vs_baseline_per_seed"] = [[round(float(v), 4) for v in rel[s]] if s != baseline else []
                                       for s in out["scheme"]]
        out.attrs["baseline"] = baseline
    return out


def pan_counts(runs: list[SchemeRun], images: torch.Tensor, fpr: float = 0.01, states=("init", "trained"),
               progress: bool = True) -> pd.DataFrame:
    """Padding-caused channels found by chapter 1's scanner (:func:`padlib.pans.find_pans`, circular null at
    ``fpr``, ``reference=None``: each run's own initialisation is the random-init control here, state "init")
    in every run's network, at initialisation and after training: one row per (scheme, seed, state)."""
    from tqdm.auto import tqdm


    rows = []
    for r in tqdm(runs, desc="PAN scans", disable=not progress):
        for state in states:
            model = r.init_model if state == "init" else r.model
            table = find_pans(model, images, fpr=fpr, progress=False, reference=None)
            rows.append({"scheme": r.scheme, "seed": r.seed, "state": state, "filters": len(table),
                         "pans": int(table["is_pan"].sum()), "share_pct": 100.0 * table["is_pan"].mean(),
                         "tau": table.attrs.get("tau", float("nan"))})
    return pd.DataFrame(rows)

