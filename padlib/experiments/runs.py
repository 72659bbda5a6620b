"""Training runs in folders: one (network, padding scheme, seed) per folder, written by ``padlib train`` and read by
the chapters that train networks, so a grid can be trained anywhere (a loop, a SLURM array, several machines,
each run under ``torchrun`` or not) and the chapter built from the folder.

A run folder holds ``config.json`` (the :class:`RunSpec`), ``metrics.json`` (final test accuracy, cost, where it
ran), ``curve.csv`` (held-out accuracy during training), ``history.csv`` (the loss per step), ``model.pt`` (the
trained network: loads as ``vgg=PATH``) and ``init.pt`` (the same network before training, the chapters' control).
"""
from __future__ import annotations

import copy
import functools
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch

from .._distributed import all_reduce_sum, broadcast_object, world
from ..errors import PadlibError, check_new_folder
from ..layers.base import PADDING_SCHEMES, convert_padding
from ..models import load_model
from ..small_nets import SMALL_MODELS, small_net_checkpoint
from .digits import load_dataset
from .smallnets import small_model
from .training import SchemeRun, TrainResult, evaluate, train

RUN_FORMAT = "padlib-run/1"
RUN_FILES = ("config.json", "metrics.json", "curve.csv", "history.csv", "model.pt", "init.pt")
# chapter 5's canvases (its parameters' defaults): what `padlib train` trains on unless told otherwise
DIGIT_CANVASES = {"canvas_size": 16, "digit_size": 8, "background": "texture", "border_fraction": 0.2,
                  "cut_fraction": 0.3, "cut_range": [0.2, 0.5]}


def _check_numbers(spec, whole=(), positive=()) -> None:
    """One line for the first field of ``spec`` that is not a whole number >= 1 (``whole``) or a number > 0
    (``positive``)."""
    for name in whole:
        value = getattr(spec, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PadlibError(f"{name} must be a whole number >= 1, got {value!r}")
    for name in positive:
        value = getattr(spec, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise PadlibError(f"{name} must be a number > 0, got {value!r}")


def _flag(name: str, value) -> str:
    """``--name value`` as the command line takes it (a list as its items, a float in its shortest form)."""
    text = " ".join(map(str, value)) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else value
    return f"--{name.replace('_', '-')} {text}"


def _from_dict(cls, d: dict, what: str):
    """``cls(**d)`` for a run's config, an unknown setting refused in one line."""
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise PadlibError(f"unknown {what} settings: {', '.join(unknown)}")
    return cls(**d)


@dataclass(frozen=True)
class RunSpec:
    """One training run: the network, its padding scheme and seed, the data and the optimisation. The defaults
    are chapter 5's; runs that differ only in ``scheme``, ``seed`` and ``epochs`` form one grid."""

    scheme: str = "zero"
    seed: int = 0
    epochs: float = 12
    model: str = "vgg"
    width: int = 8
    depth: int = 3
    dataset: str = "digits"
    n_train: int = 2500
    n_test: int = 2000
    data_seed: int = 0
    canvases: dict = field(default_factory=lambda: dict(DIGIT_CANVASES))  # the digits' settings (else unused)
    batch_size: int = 64
    lr: float = 6e-3
    n_eval: int = 500
    evals_per_epoch: int = 1

    RUN_KEYS = ("scheme", "seed", "epochs")  # what varies inside a grid
    COMMAND = "padlib train"

    def __post_init__(self):
        if self.scheme not in PADDING_SCHEMES:
            raise PadlibError(f"unknown padding scheme '{self.scheme}'; choose one of {', '.join(PADDING_SCHEMES)}")
        if self.model not in SMALL_MODELS:
            raise PadlibError(f"unknown small network '{self.model}'; choose one of {', '.join(SMALL_MODELS)}")
        _check_numbers(self, whole=("width", "depth", "n_train", "n_test", "batch_size", "n_eval", "evals_per_epoch"),
                       positive=("epochs", "lr"))
        if self.n_eval > self.n_test:
            raise PadlibError(f"n_eval ({self.n_eval}) held-out images are taken from the test set: at most n_test "
                              f"({self.n_test})")
        if self.dataset not in ("digits", "cifar10") and not os.path.isdir(self.dataset):
            raise PadlibError(f"dataset '{self.dataset}' is neither 'digits', 'cifar10' nor a folder of labelled "
                              "images (one sub-folder per class)")

    @property
    def name(self) -> str:
        """The run's folder name: ``vgg-zero-seed3-e12``."""
        return f"{self.model}-{self.scheme}-seed{self.seed}-e{self.epochs:g}"

    def grid_settings(self) -> dict:
        """Everything but the scheme, the seed and the epochs: what every run of one grid shares."""
        out = {k: v for k, v in asdict(self).items() if k not in self.RUN_KEYS}
        if self.dataset != "digits":
            out.pop("canvases")
        return out

    def data(self):
        """(train, test) image sets, the same on every process and machine for the same spec (the last grid's are
        kept, so a loop over one grid's runs in one process builds them once)."""
        return _grid_data(json.dumps({k: self.grid_settings().get(k) for k in
                                      ("dataset", "n_train", "n_test", "data_seed", "canvases")}, sort_keys=True))

    def data_bytes(self) -> int:
        """What the data set holds in memory: every training and test image as float32 (digits: one channel at
        the canvas side; CIFAR-10 and folders: three channels at 32 px)."""
        channels, side = (1, self.canvases["canvas_size"]) if self.dataset == "digits" else (3, 32)
        return (self.n_train + self.n_test) * channels * side * side * 4

    def check_memory(self, limit: int | None = None) -> None:
        """Refuse, in one line and before any work, a data set larger than ``limit`` bytes (default: half this
        machine's memory, or ``PADLIB_MAX_MEMORY_GB``): the images are held in memory."""
        from .._memory import GB, memory_limit

        limit = memory_limit() if limit is None else limit
        need = self.data_bytes()
        if need > limit:
            per_image = need // (self.n_train + self.n_test)
            most = max(limit // per_image - self.n_test, 0)
            raise PadlibError(f"the data set would hold {need / GB:.1f} GB in memory ({self.n_train + self.n_test} "
                              f"float32 images), over the {limit / GB:.1f} GB allowed (half this machine's memory, or "
                              f"PADLIB_MAX_MEMORY_GB): lower n_train to at most {most}")

    def command(self) -> str:
        """The ``padlib train`` command line that trains this run (the flags that differ from the defaults)."""
        default = RunSpec()
        flags = [f"--scheme {self.scheme}", f"--seed {self.seed}"]
        for f in fields(self):
            value, base = getattr(self, f.name), getattr(default, f.name)
            if f.name in ("scheme", "seed") or value == base:
                continue
            if f.name == "canvases":
                flags += [_flag(k, v) for k, v in value.items() if v != DIGIT_CANVASES.get(k)]
            else:
                flags.append(_flag(f.name, value))
        return f"{self.COMMAND} " + " ".join(flags)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        return _from_dict(cls, d, "run")


@functools.lru_cache(maxsize=1)
def _grid_data(settings: str):
    s = json.loads(settings)
    extra = {**s["canvases"], "cut_range": tuple(s["canvases"]["cut_range"])} if s["dataset"] == "digits" else {}
    return load_dataset(s["dataset"], s["n_train"], s["n_test"], seed=s["data_seed"], **extra)


def _claim_run_folder(runs_dir, spec) -> Path | None:
    """The run's folder, checked by rank 0 before any work: ``runs_dir`` is (or can become) a writable folder that
    may hold other runs, and holds no run of this name yet (a run is never overwritten). Every rank raises rank 0's
    refusal; ranks other than 0 get None."""
    target, problem = None, None
    if world()[0] == 0:
        try:
            check_new_folder(runs_dir, force=True, what="runs folder", contents="runs")  # other runs stay
            target = Path(runs_dir) / spec.name
            if target.exists():
                raise PadlibError(f"run '{target}' exists already; runs are never overwritten: remove it to train it "
                                  "again")
        except PadlibError as e:
            problem = str(e)
    problem = broadcast_object(problem)  # every rank stops on rank 0's refusal, before any work
    if problem:
        raise PadlibError(problem)
    return target


def train_run(spec: RunSpec, runs_dir, device="cpu", progress: bool = True) -> Path | None:
    """Train the run ``spec`` describes and write its folder under ``runs_dir`` (rank 0 writes; returns its path,
    None on the other ranks). Under ``torchrun`` the global batch is shared among the processes (see
    :func:`padlib.experiments.training.train`): the same run as in one process, up to rounding.

    The network at a seed is the one chapter 5 trains inline at that seed (same initial weights, same batches)."""
    if not isinstance(spec, RunSpec):
        raise PadlibError(f"spec must be a RunSpec, got {type(spec).__name__}")
    spec.check_memory()
    rank, size = world()
    target = _claim_run_folder(runs_dir, spec)
    wall, cpu = time.perf_counter(), time.process_time()
    train_set, test_set = spec.data()
    base = small_model(spec.model, train_set, seed=spec.seed, width=spec.width, depth=spec.depth)
    init = convert_padding(base, spec.scheme)
    net = copy.deepcopy(init)
    result = train(net, train_set, "label", spec.epochs, spec.batch_size, spec.lr, spec.seed, device,
                   progress=spec.name if progress else False, eval_data=test_set.head(spec.n_eval),
                   evals_per_epoch=spec.evals_per_epoch)
    cpu_seconds = float(all_reduce_sum(time.process_time() - cpu))  # every process's CPU time
    if rank != 0:
        return None
    accuracy = float(evaluate(net, test_set, device=device)["correct"].mean())
    metrics = {"test_accuracy": accuracy, "n_test": len(test_set), "steps": len(result.history),
               "seconds_per_step": result.seconds_per_step, "wall_seconds": time.perf_counter() - wall,
               "cpu_seconds": cpu_seconds, "processes": size, "device": str(device), "torch": torch.__version__}
    arch = {"kind": spec.model, "in_channels": train_set.images.shape[1], "num_classes": _classes(net),
            "scheme": spec.scheme, "input_size": train_set.images.shape[-1], "width": spec.width, "depth": spec.depth}
    _write_folder(target, {"format": RUN_FORMAT, "task": "classification", **asdict(spec)}, metrics,
                  {"curve.csv": result.evaluations, "history.csv": result.history},
                  {"model.pt": small_net_checkpoint(net, **arch), "init.pt": small_net_checkpoint(init, **arch)})
    return target


def _classes(net) -> int:
    return int([m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1].out_features)


def _write_folder(target: Path, config: dict, metrics: dict, tables: dict, checkpoints: dict) -> None:
    """All of a run's files in a hidden folder beside ``target``, renamed to ``target`` at the end: a crash or
    Ctrl-C leaves no half run that a chapter could read (readers skip hidden folders)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        for name, table in tables.items():
            table.to_csv(tmp / name, index=False)
        for name, checkpoint in checkpoints.items():
            torch.save(checkpoint, tmp / name)
        try:
            os.rename(tmp, target)  # fails if a run of that name appeared meanwhile: never overwritten
        except OSError:
            raise PadlibError(f"run '{target}' was written by another process while this one trained; this run was "
                              "not kept (runs are never overwritten)") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------------
# reading a grid

def _missing_runs(folder: Path, labels: list, total: int, noun: str, first, advice: str) -> PadlibError:
    """One line: how many of the plan's ``total`` runs ``folder`` lacks (``labels``, the first six shown), the
    command that trains the ``first`` missing spec, and which chapter parameters would need fewer."""
    more = f" and {len(labels) - 6} more" if len(labels) > 6 else ""
    return PadlibError(f"runs folder '{folder}' lacks {len(labels)} of the {total} {noun} the chapter's plan needs: "
                       f"{', '.join(labels[:6])}{more}; train each with {first.COMMAND} (the first: "
                       f"'{first.command()} --out {folder}') or lower {advice}")


def _origin(chosen: list, total: int, noun: str, command: str) -> str:
    """Where the ``chosen`` runs (their metrics) came from, in one line: how many (of ``total`` in the folder), the
    processes and devices they trained on, and their CPU time."""
    procs = sorted({m["processes"] for m in chosen})
    devices = sorted({m["device"] for m in chosen})
    return (f"{len(chosen)} {noun} read from the runs folder (of {total} in it), trained by {command} in "
            f"{' or '.join(map(str, procs))} process{'es' if procs != [1] else ''} each on {', '.join(devices)}, "
            f"{sum(m['cpu_seconds'] for m in chosen):.0f} CPU s in all")

@dataclass
class RunGrid:
    """The runs of one folder, read back: their specs, :class:`SchemeRun` objects (as inline training returns
    them) and metrics; every run shares :attr:`settings` (the spec less scheme, seed and epochs)."""

    folder: Path
    specs: list
    runs: list
    metrics: list
    settings: dict

    def select(self, plan) -> list:
        """The runs of ``plan`` ((scheme, seed, epochs) triples, as :func:`padlib.experiments.ch5_schemes.seed_plan`
        gives them), in plan order; a missing run is refused in one line that lists the missing ones and the
        command that trains the first."""
        index = {(s.scheme, s.seed, float(s.epochs)): r for s, r in zip(self.specs, self.runs)}
        missing = [(s, seed, float(e)) for s, seed, e in plan if (s, seed, float(e)) not in index]
        if missing:
            first = RunSpec.from_dict({**self.settings, "scheme": missing[0][0], "seed": missing[0][1],
                                       "epochs": missing[0][2]})
            raise _missing_runs(self.folder, [f"{s} seed {seed} ({e:g} epochs)" for s, seed, e in missing], len(plan),
                                "runs", first, "n_seeds / n_seeds_other / longer_seeds")
        return [index[(s, seed, float(e))] for s, seed, e in plan]

    def chapter_settings(self) -> dict:
        """The chapter parameters the runs decide (data, network, optimisation), under the chapter's names; the
        epochs are the shortest runs' (the plan's longer runs train a multiple of them)."""
        s = self.settings
        out = {"dataset": s["dataset"], "n_train": s["n_train"], "n_test": s["n_test"], "seed": s["data_seed"],
               "model": s["model"], "width": s["width"], "depth": s["depth"], "batch_size": s["batch_size"],
               "lr": s["lr"], "n_eval": s["n_eval"], "epochs": min(float(spec.epochs) for spec in self.specs)}
        out.update({k: v for k, v in s.get("canvases", {}).items()})
        return out

    def describe(self, used: list | None = None) -> str:
        """Where the runs came from, in one line: how many (of how many in the folder), the processes and
        devices they trained on, and their CPU time."""
        used = {id(u) for u in (self.runs if used is None else used)}
        return _origin([m for r, m in zip(self.runs, self.metrics) if id(r) in used], len(self.runs), "runs",
                       RunSpec.COMMAND)


def _read_config(folder: Path, files) -> tuple[dict, dict]:
    """A run folder's (config, metrics), checked: every file of its task there, written by this format."""
    absent = [f for f in files if not (folder / f).is_file()]
    if absent:
        raise PadlibError(f"'{folder}' is not a complete run folder (no {', '.join(absent)}); remove it or train it "
                          "again")
    try:
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise PadlibError(f"cannot read run '{folder}': {e}") from None
    if config.pop("format", None) != RUN_FORMAT:
        raise PadlibError(f"'{folder / 'config.json'}' was not written by this padlib's train (format {RUN_FORMAT})")
    return config, metrics


def _task(folder: Path) -> str | None:
    """The task of a run folder ("classification" or "detection"), None when it has no readable config."""
    try:
        return json.loads((folder / "config.json").read_text()).get("task", "classification")
    except (OSError, ValueError, AttributeError):
        return None


def read_run(folder) -> tuple[RunSpec, SchemeRun, dict]:
    """One classification run folder: (spec, run with its trained and initial networks, metrics). One line if it is
    incomplete or not a run."""
    folder = Path(folder)
    config, metrics = _read_config(folder, RUN_FILES)
    config.pop("task", None)
    spec = RunSpec.from_dict(config)
    model = load_model(f"{spec.model}={folder / 'model.pt'}")
    init = load_model(f"{spec.model}={folder / 'init.pt'}")
    result = TrainResult(model, pd.read_csv(folder / "history.csv"), pd.read_csv(folder / "curve.csv"))
    return spec, SchemeRun(spec.scheme, spec.seed, init, model, result, float(spec.epochs),
                           float(metrics["cpu_seconds"])), metrics


TASKS = ("classification", "detection")


def read_grid(runs_dir, task: str = "classification"):
    """Every run folder of ``task`` under ``runs_dir`` (hidden folders, i.e. runs still being written, are skipped;
    runs of the other task are left alone), checked to form one grid: the same settings, differing only in the
    spec's run keys. Classification: a :class:`RunGrid`; detection (chapter 4): a :class:`DetectorGrid`."""
    if task not in TASKS:
        raise PadlibError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise PadlibError(f"runs folder '{runs_dir}' does not exist or is not a folder")
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    folders = [f for f in folders if _task(f) in (task, None)]  # a folder without a config: refused below
    if not folders:
        command = (RunSpec if task == "classification" else DetectorRunSpec).COMMAND
        raise PadlibError(f"runs folder '{runs_dir}' holds no {task} runs; train them with {command} --out {runs_dir}")
    specs, runs, metrics = [], [], []
    for folder in folders:
        if task == "classification":
            spec, run, m = read_run(folder)
            runs.append(run)
        else:
            config, m = _read_config(folder, DETECTOR_FILES)
            config.pop("task", None)
            spec = DetectorRunSpec.from_dict(config)
            if spec.name != folder.name:
                raise PadlibError(f"run folder '{folder}' holds the run '{spec.name}'; keep each run under its own name")
        specs.append(spec)
        metrics.append(m)
    settings = specs[0].grid_settings()
    for folder, spec in zip(folders, specs):
        other = spec.grid_settings()
        differ = [k for k in sorted(set(settings) | set(other)) if settings.get(k) != other.get(k)]
        if differ:
            k = differ[0]
            raise PadlibError(f"runs in '{runs_dir}' are not one grid: '{folders[0].name}' has {k} "
                              f"{settings.get(k)!r}, '{folder.name}' has {other.get(k)!r}")
    if task == "detection":
        return DetectorGrid(runs_dir, specs, metrics, settings)
    return RunGrid(runs_dir, specs, runs, metrics, settings)


# ---------------------------------------------------------------------------------------------------------
# chapter 4's detectors

@dataclass(frozen=True)
class DetectorRunSpec:
    """One of chapter 4's detectors: (padding scheme or the noisy-top control, seed, input size) and its training.
    The defaults are chapter 4's; runs that differ only in ``scheme``, ``seed`` and ``size`` form one grid."""

    scheme: str = "zero"
    seed: int = 0
    size: int = 96
    width: int = 8
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    n_train: int = 2048
    object_sizes: list = field(default_factory=lambda: [4, 8])
    noise_std: float = 3.0

    RUN_KEYS = ("scheme", "seed", "size")
    COMMAND = "padlib train-detector"

    def __post_init__(self):
        from .ch4_detection import CONTROL

        if self.scheme not in (*PADDING_SCHEMES, CONTROL):
            raise PadlibError(f"unknown padding scheme '{self.scheme}'; choose one of {', '.join(PADDING_SCHEMES)} "
                              f"or '{CONTROL}' (the positive control)")
        _check_numbers(self, whole=("width", "steps", "batch_size", "n_train"))
        if not isinstance(self.size, int) or self.size < 32:
            raise PadlibError(f"size must be a whole number of pixels >= 32 (five stride-2 stages), got {self.size!r}")
        _check_numbers(self, positive=("lr", "noise_std"))

    @property
    def name(self) -> str:
        """The run's folder name: ``detector-zero-size96-seed3``."""
        return f"detector-{self.scheme.replace(' ', '-')}-size{self.size}-seed{self.seed}"

    def grid_settings(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.RUN_KEYS}

    def command(self) -> str:
        """The ``padlib train-detector`` command line that trains this run."""
        default = DetectorRunSpec()
        flags = [f"--scheme {self.scheme.replace(' ', '-')}", f"--size {self.size}", f"--seed {self.seed}"]
        flags += [_flag(f.name, getattr(self, f.name)) for f in fields(self)
                  if f.name not in self.RUN_KEYS and getattr(self, f.name) != getattr(default, f.name)]
        return f"{self.COMMAND} " + " ".join(flags)

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorRunSpec":
        return _from_dict(cls, d, "detector run")


def train_detector_run(spec: DetectorRunSpec, runs_dir, device="cpu", progress: bool = True) -> Path | None:
    """Train the detector ``spec`` describes (:func:`padlib.experiments.ch4_detection.train_detector`: the network
    chapter 4 trains inline for that size, scheme and seed) and write its run folder: ``config.json``,
    ``metrics.json``, ``history.csv`` (loss per step) and ``model.pt`` (``detector=PATH`` loads it, except the
    noisy-top control, which chapter 4 rebuilds). Rank 0 writes; under ``torchrun`` the batch is shared."""
    from .ch4_detection import detector_network, train_detector

    if not isinstance(spec, DetectorRunSpec):
        raise PadlibError(f"spec must be a DetectorRunSpec, got {type(spec).__name__}")
    rank, size = world()
    target = _claim_run_folder(runs_dir, spec)
    wall, cpu = time.perf_counter(), time.process_time()
    net = detector_network(spec.scheme, spec.seed, spec.width, spec.noise_std)
    losses = train_detector(net, spec.size, spec.seed, spec.steps, spec.batch_size, spec.lr, n_train=spec.n_train,
                            object_sizes=tuple(spec.object_sizes), device=device,
                            progress=spec.name if progress else False)
    cpu_seconds = float(all_reduce_sum(time.process_time() - cpu))
    if rank != 0:
        return None
    metrics = {"final_loss": losses[-1], "steps": len(losses), "wall_seconds": time.perf_counter() - wall,
               "cpu_seconds": cpu_seconds, "processes": size, "device": str(device), "torch": torch.__version__}
    arch = {"kind": "detector", "in_channels": 1, "num_classes": 1, "input_size": spec.size, "width": spec.width,
            "scheme": spec.scheme}  # the noisy-top control's padding is no scheme load_model rebuilds: it says so
    history = pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses})
    _write_folder(target, {"format": RUN_FORMAT, "task": "detection", **asdict(spec)}, metrics,
                  {"history.csv": history}, {"model.pt": small_net_checkpoint(net.cpu(), **arch)})
    return target


DETECTOR_FILES = ("config.json", "metrics.json", "history.csv", "model.pt")


@dataclass
class DetectorGrid:
    """Chapter 4's detector runs of one folder, read back; every run shares :attr:`settings`."""

    folder: Path
    specs: list
    metrics: list
    settings: dict

    def select(self, keys) -> dict:
        """(size, scheme, seed) -> (trained network, losses per step, CPU seconds) for every key, in the form
        :func:`padlib.experiments.ch4_detection.detection_study` takes (``trained=``); a missing run is refused in
        one line with the command that trains the first."""
        index = {(s.size, s.scheme, s.seed): i for i, s in enumerate(self.specs)}
        missing = [k for k in keys if tuple(k) not in index]
        if missing:
            si, sc, se = missing[0]
            first = DetectorRunSpec.from_dict({**self.settings, "size": si, "scheme": sc, "seed": se})
            raise _missing_runs(self.folder, [f"{sc} size {si} seed {se}" for si, sc, se in missing], len(keys),
                                "detectors", first, "detector_seeds")
        return {tuple(k): self._load(index[tuple(k)]) for k in keys}

    def _load(self, i: int):
        from ..models import load_checkpoint
        from .ch4_detection import detector_network

        spec = self.specs[i]
        folder = self.folder / spec.name
        net = detector_network(spec.scheme, spec.seed, spec.width, spec.noise_std)
        net.load_state_dict(load_checkpoint(str(folder / "model.pt")))
        losses = pd.read_csv(folder / "history.csv")["loss"].tolist()
        return net.eval(), losses, float(self.metrics[i]["cpu_seconds"])

    def describe(self, keys) -> str:
        """Where the detectors of ``keys`` ((size, scheme, seed)) came from, in one line (as :meth:`RunGrid.describe`)."""
        keys = set(map(tuple, keys))
        return _origin([m for s, m in zip(self.specs, self.metrics) if (s.size, s.scheme, s.seed) in keys],
                       len(self.specs), "detectors", DetectorRunSpec.COMMAND)
