"""``padlib train`` (chapter 5's classifiers) and ``padlib train-detector`` (chapter 4's detectors): one (network,
padding scheme, seed) training run into a run folder, in one process or under ``torchrun`` (the global batch shared
among the processes). A grid is one command per run; the training chapters read the folder (``-p runs_dir FOLDER``)."""
from __future__ import annotations

import json
import re

from ._distributed import process_group, world
from .errors import PadlibError
from .experiments.runs import DIGIT_CANVASES, DetectorRunSpec, RunSpec, train_detector_run, train_run
from .layers.base import PADDING_SCHEMES
from .small_nets import SMALL_MODELS


def register(subparsers, whole, number, seed_type) -> None:
    """The ``train`` sub-command; ``whole``/``number``/``seed_type``: the command line's one-line value checks."""
    d = RunSpec()
    p = subparsers.add_parser("train", help="train one small network (padding scheme x seed) into a run folder; "
                                            "under torchrun the batch is shared among the processes")
    p.add_argument("--scheme", required=True, choices=list(PADDING_SCHEMES), metavar="SCHEME",
                   help=f"padding scheme: {', '.join(PADDING_SCHEMES)}")
    p.add_argument("--seed", type=seed_type, default=0,
                   help="the run's seed: initial weights and batch order (every scheme starts from the same "
                        "weights at one seed)")
    p.add_argument("--epochs", type=number(0, open_low=True, hint="12"), default=d.epochs,
                   help=f"passes over the training set (default {d.epochs:g})")
    p.add_argument("--model", choices=list(SMALL_MODELS), default=d.model, help=f"network (default {d.model})")
    p.add_argument("--width", type=whole(1), default=d.width, help=f"first-stage channels (default {d.width})")
    p.add_argument("--depth", type=whole(1), default=d.depth, help=f"stages (default {d.depth})")
    p.add_argument("--dataset", default=d.dataset,
                   help="'digits' (offline canvases, chapter 5's), 'cifar10' or a folder of labelled images "
                        "(ImageNet layout: one sub-folder per class)")
    p.add_argument("--n-train", type=whole(1), default=d.n_train, help=f"training images (default {d.n_train})")
    p.add_argument("--n-test", type=whole(1), default=d.n_test, help=f"test images (default {d.n_test})")
    p.add_argument("--n-eval", type=whole(1), default=d.n_eval,
                   help=f"test images evaluated during training, for the learning curve (default {d.n_eval})")
    p.add_argument("--data-seed", type=seed_type, default=d.data_seed,
                   help="seed of the data set (the digits' canvases, the split of a folder): one per grid")
    for key, value in DIGIT_CANVASES.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list):
            p.add_argument(flag, type=number(0, 1), nargs=2, default=value, metavar=("LOW", "HIGH"),
                           help=f"digits: {key.replace('_', ' ')} (default {value[0]:g} {value[1]:g})")
        elif isinstance(value, str):
            p.add_argument(flag, choices=["texture", "black"], default=value, help=f"digits: background (default {value})")
        elif isinstance(value, int):
            p.add_argument(flag, type=whole(4, unit="pixels"), default=value,
                           help=f"digits: {key.replace('_', ' ')} (default {value})")
        else:
            p.add_argument(flag, type=number(0, 1), default=value, help=f"digits: {key.replace('_', ' ')} "
                                                                        f"(default {value:g})")
    p.add_argument("--batch-size", type=whole(1), default=d.batch_size,
                   help=f"the global batch (shared among torchrun's processes; default {d.batch_size})")
    p.add_argument("--lr", type=number(0, open_low=True, hint="0.006"), default=d.lr,
                   help=f"Adam's learning rate, cosine-decayed to 0 (default {d.lr:g})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs", help="the runs folder; the run gets its own folder in it, never "
                                                 "overwritten (default runs)")
    p.set_defaults(func=_cmd_train)


def spec_from_args(args) -> RunSpec:
    """The :class:`RunSpec` of the command's flags (checked there: a bad value is one line)."""
    canvases = {k: getattr(args, k) for k in DIGIT_CANVASES}
    return RunSpec(scheme=args.scheme, seed=args.seed, epochs=args.epochs, model=args.model, width=args.width,
                   depth=args.depth, dataset=args.dataset, n_train=args.n_train, n_test=args.n_test,
                   data_seed=args.data_seed, canvases=canvases, batch_size=args.batch_size, lr=args.lr,
                   n_eval=args.n_eval)


def _cmd_train(args) -> int:
    try:
        spec = spec_from_args(args)
        spec.check_memory()
    except PadlibError as e:  # the flags' spelling where the spec names its fields
        e.command_line = re.sub(r"\b(n_train|n_test|n_eval)\b", lambda m: "--" + m.group(1).replace("_", "-"), str(e))
        raise
    def summary(m: dict, processes: int, folder) -> str:
        return (f"{spec.name}: test accuracy {m['test_accuracy']:.4f} on {m['n_test']} images after "
                f"{_count(m['steps'], 'step')} of {spec.batch_size} ({_processes(processes)}, {m['wall_seconds']:.0f} s)\n"
                f"wrote {folder} (load the network with {spec.model}={folder / 'model.pt'})")

    return _train_in_group(args, spec, train_run, summary)


def _count(n: int, noun: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _processes(n: int) -> str:
    return f"{n} process{'es' if n > 1 else ''}"


def _train_in_group(args, spec, train, summary) -> int:
    """``train(spec, --out)`` in torchrun's process group (when launched by it), the global batch checked to split
    over the processes; rank 0 prints ``summary(metrics, processes, the run's folder)``."""
    with process_group(args.device) as device:
        rank, processes = world()
        if args.batch_size % processes:
            raise PadlibError(f"--batch-size {args.batch_size} is the global batch: it must split evenly over the "
                              f"{processes} processes")
        folder = train(spec, args.out, device=device, progress=True)
        if rank == 0:
            print(summary(json.loads((folder / "metrics.json").read_text()), processes, folder))
    return 0


def register_detector(subparsers, whole, number, seed_type) -> None:
    """The ``train-detector`` sub-command: one of chapter 4's detectors (or its noisy-top control)."""
    from .experiments.ch4_detection import CONTROL

    d = DetectorRunSpec()
    control = CONTROL.replace(" ", "-")
    p = subparsers.add_parser("train-detector", help="train one of chapter 4's small ring detectors (padding scheme "
                                                     "x input size x seed) into a run folder")
    p.add_argument("--scheme", required=True, choices=[*PADDING_SCHEMES, control], metavar="SCHEME",
                   help=f"padding scheme: {', '.join(PADDING_SCHEMES)}, or {control} (the positive control)")
    p.add_argument("--size", type=whole(32, unit="pixels"), default=d.size,
                   help=f"canvas side in px (default {d.size}: uneven at every stride-2 stage; 97 is even)")
    p.add_argument("--seed", type=seed_type, default=0, help="initial weights, training canvases and batches")
    p.add_argument("--width", type=whole(1), default=d.width, help=f"first-stage channels (default {d.width})")
    p.add_argument("--steps", type=whole(1), default=d.steps, help=f"training steps (default {d.steps})")
    p.add_argument("--batch-size", type=whole(1), default=d.batch_size,
                   help=f"the global batch (shared among torchrun's processes; default {d.batch_size})")
    p.add_argument("--lr", type=number(0, open_low=True, hint="0.003"), default=d.lr,
                   help=f"Adam's peak learning rate, one-cycle schedule (default {d.lr:g})")
    p.add_argument("--n-train", type=whole(1), default=d.n_train, help=f"training canvases (default {d.n_train})")
    p.add_argument("--object-sizes", type=whole(2, unit="pixels"), nargs=2, default=d.object_sizes,
                   metavar=("LOW", "HIGH"), help="ring sides in px during training (default 4 8)")
    p.add_argument("--noise-std", type=number(0, open_low=True), default=d.noise_std,
                   help=f"the control's noise (default {d.noise_std:g})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs", help="the runs folder (default runs)")
    p.set_defaults(func=_cmd_train_detector)


def _cmd_train_detector(args) -> int:
    spec = DetectorRunSpec(scheme=args.scheme.replace("-", " ") if args.scheme.startswith("noisy") else args.scheme,
                           seed=args.seed, size=args.size, width=args.width, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, n_train=args.n_train,
                           object_sizes=list(args.object_sizes), noise_std=args.noise_std)
    def summary(m: dict, processes: int, folder) -> str:
        return (f"{spec.name}: final loss {m['final_loss']:.4f} after {_count(m['steps'], 'step')} of {spec.batch_size} "
                f"({_processes(processes)}, {m['wall_seconds']:.0f} s)\nwrote {folder}")

    return _train_in_group(args, spec, train_detector_run, summary)
