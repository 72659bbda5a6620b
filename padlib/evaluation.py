"""A model's outputs on images, and how they differ from a reference's, whatever the forward returns.

Every output is read by :mod:`padlib.outputs` (:func:`~padlib.outputs.read_output`: ``output=`` picks a key, an
index or applies a function; a tuple's or dict's tensor is found by the adapter's rules). Then it is compared in
its own terms: class logits (N, K) by top-1 agreement and KL(reference || model) (:func:`compare_logits`), dense
maps (N, C, H, W) by the relative change of the map and the per-pixel argmax agreement, each also in the border
band and the interior (:func:`compare_maps`, from :func:`padlib.outputs.dense_metrics`). :func:`evaluate` runs a
model and compares; :mod:`padlib.interventions` runs every intervention through the same path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import (
    check_device,
    check_images,
    eval_mode,
    iter_batches,
    keeps_model,
    meta_forward,
    model_device,
    model_dtype,
)
from ._memory import input_channels
from .data import labelled_images
from .errors import PadlibError, ProbeDataError, check_type
from .models import imagenet_classes
from .outputs import (DENSE_METRICS, check_output, dense_metrics, logit_metrics, output_words,
                      pooled_relative_change, read_output)
from .stats import bootstrap_ci, bootstrap_totals

PER_IMAGE_METRICS = ("confidence", "agreement", "kl", "confidence_change", "top1_accuracy", "top5_accuracy",
                     "reference_top1_accuracy")
COMPARE_CHUNK = 2 ** 22  # float64 elements (images x classes) per chunk of compare_logits: 32 MB per array
# How a page names each metric of a dense comparison (the logits' metrics keep their names: agreement, kl, ...)
METRIC_WORDS = {"relative_change": "relative change of the map",
                "relative_change_border": "relative change of the map (border band)",
                "relative_change_interior": "relative change of the map (interior)",
                "argmax_agreement": "per-pixel agreement",
                "argmax_agreement_border": "per-pixel agreement (border band)",
                "argmax_agreement_interior": "per-pixel agreement (interior)"}


@dataclass
class Evaluation:
    """What an intervention did: ``summary`` (metric, value, ci_low, ci_high, n), ``per_image`` values,
    ``class_counts`` (logits: per class, predictions and probability mass, with the reference's; dense maps: no
    rows) and ``logits``: the outputs compared, logits (N, K) or maps (N, C, H, W) (None where an intervention
    did not keep a dense map). ``kind`` ('logits' or 'dense'), ``output`` (the part of the forward's result read,
    e.g. "['out']") and ``shape`` (per image) say what was compared."""

    summary: pd.DataFrame
    per_image: pd.DataFrame
    class_counts: pd.DataFrame
    logits: torch.Tensor | None
    kind: str = "logits"
    output: str = ""
    shape: tuple = ()

    @property
    def outputs(self) -> torch.Tensor | None:
        """The outputs compared (the same tensor as ``logits``, under a name that fits dense maps too)."""
        return self.logits

    def value(self, metric: str) -> float:
        row = self.summary[self.summary["metric"] == metric]
        if row.empty:
            raise PadlibError(f"no metric '{metric}'; available: {', '.join(self.summary['metric'])}")
        return float(row["value"].iloc[0])

    def describe(self) -> str:
        """The output compared, as a page names it: "['out'] (dense, 21 x 64 x 64)"."""
        return output_words(self.output or "tensor", self.kind, self.shape)


def _batches(model, images, batch_size, device, progress, output):
    """(tensor, where, kind) per batch of ``images``, read by :func:`padlib.outputs.read_output`."""
    check_type("model", model, nn.Module)
    check_output(output)
    images = check_images(images, number=False)
    device = check_device(device) or model_device(model)
    for b in iter_batches(images, batch_size, device, progress, model_dtype(model)):
        yield read_output(model(b), output)


@keeps_model
@torch.no_grad()
def model_outputs(model: nn.Module, images, batch_size: int = 8, device=None, progress: bool | str = False,
                  output=None) -> torch.Tensor:
    """What ``model`` outputs on ``images`` (a ProbeImages set, a tensor (N, 3, H, W) or batches), on the CPU,
    float32: logits (N, K) or dense maps (N, C, H, W), read by :func:`padlib.outputs.read_output` (``output=``: a
    key, an index or a function of the forward's result). A fixed batch size keeps CPU kernels warm."""
    out = [t for t, _, _ in _batches(model, images, batch_size, device, progress, output)]
    if not out:
        raise ProbeDataError("no images to evaluate")
    return torch.cat(out)


def model_logits(model: nn.Module, images, batch_size: int = 8, device=None, progress: bool | str = False,
                 output=None) -> torch.Tensor:
    """:func:`model_outputs` under its old name (a classifier's logits (N, K); any other output the same way)."""
    return model_outputs(model, images, batch_size, device, progress, output)


@keeps_model
@torch.no_grad()
def output_info(model: nn.Module, size: int, output=None, device=None) -> tuple[str, str, tuple]:
    """(where, kind, shape per image) of the output ``output=`` picks, from one forward of a zero image at ``size``
    px (on meta tensors where the model runs on them: no arithmetic), so a bad ``output=`` or an output the
    adapter cannot read is refused before a long run starts."""
    check_output(output)
    x = torch.zeros(1, input_channels(model), size, size)
    with eval_mode(model):
        try:
            t, where, kind = read_output(meta_forward(model, x.to("meta")), output)
        except PadlibError:
            raise
        except Exception:  # noqa: BLE001 - a model (or an output= function) that needs real tensors
            t, where, kind = read_output(model(x.to(check_device(device) or model_device(model))), output)
    return where, kind, tuple(t.shape[1:])


def compare_logits(logits: torch.Tensor, reference: torch.Tensor | None = None, labels=None, n_boot: int = 1000,
                   seed: int = 0, ci: float = 0.95, class_names=None, output: str = "") -> Evaluation:
    """The metrics of :func:`evaluate` from logits already computed (so one reference serves many runs).

    Per-image values are computed on chunks of images: float64 probabilities of every image at once would take
    40 bytes per image and class (4 GB for 100,000 ImageNet images)."""
    if logits.dim() != 2:
        raise PadlibError(f"compare_logits compares class logits (N, K), got shape {tuple(logits.shape)}: compare "
                          "dense maps with padlib.evaluation.compare_maps (padlib.evaluate does either)")
    n, k = logits.shape
    names = class_names or (imagenet_classes() if k == 1000 else [str(i) for i in range(k)])
    if reference is not None and tuple(reference.shape) != (n, k):
        raise PadlibError(f"reference logits have shape {tuple(reference.shape)}, the model's {(n, k)}: "
                          "evaluate both on the same images")
    lab = None
    if labels is not None:
        lab = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if lab.shape != (n,):
            raise PadlibError(f"{lab.numel()} labels for {n} images")
    rows = max(1, COMPARE_CHUNK // max(k, 1))
    parts = [logit_metrics(logits[s:s + rows], None if reference is None else reference[s:s + rows],
                           None if lab is None else lab[s:s + rows], k) for s in range(0, max(n, 1), rows)]
    per = {key: np.concatenate([pt[0][key] for pt in parts]) for key in parts[0][0]}
    mass = sum(pt[1] for pt in parts)
    per = {"image": np.arange(n), "top1": per["top1"], "top1_name": [names[i] for i in per["top1"].tolist()],
           **{key: v for key, v in per.items() if key != "top1"}}
    per_image = pd.DataFrame(per)
    summary = _summary(per_image, [m for m in PER_IMAGE_METRICS if m in per_image], n_boot, seed, ci)
    counts = np.bincount(per["top1"], minlength=k)
    classes = pd.DataFrame({"class_index": np.arange(k), "class_name": names, "count": counts,
                            "prob_mass": mass[0].numpy()})
    if reference is not None:
        classes["reference_count"] = np.bincount(per["reference_top1"], minlength=k)
        classes["reference_prob_mass"] = mass[1].numpy()
        classes["count_change"] = classes["count"] - classes["reference_count"]
        classes["prob_mass_change"] = classes["prob_mass"] - classes["reference_prob_mass"]
    return Evaluation(summary, per_image, classes, logits, "logits", output, (k,))


def _summary(per_image: pd.DataFrame, metrics, n_boot: int, seed: int, ci: float) -> pd.DataFrame:
    """One row per metric: the mean over images with its seeded percentile bootstrap interval (NaN columns out);
    a map's relative change pooled over images instead (:func:`padlib.outputs.pooled_relative_change`), its
    interval resampling the images' totals."""
    rows = []
    for metric in metrics:
        v = per_image[metric].to_numpy(dtype=float)
        if np.isnan(v).all():  # e.g. the interior of a map under 3 px
            continue
        suffix = metric[len("relative_change"):]
        if metric.startswith("relative_change") and f"sq_change{suffix}" in per_image:
            totals = per_image[[f"sq_change{suffix}", f"sq_size{suffix}"]].to_numpy(dtype=float)
            lo, hi = bootstrap_totals(totals, pooled_relative_change, n_boot, seed, ci)
            value = float(pooled_relative_change(totals.sum(0)))
        else:
            lo, hi = bootstrap_ci(v, n_boot, seed, ci)
            value = float(v.mean())
        rows.append({"metric": metric, "value": value, "ci_low": float(lo), "ci_high": float(hi), "n": len(v)})
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "n"])


def _resized(maps: torch.Tensor, hw) -> torch.Tensor:
    """Maps (N, C, h, w) resized to ``hw`` (bilinear, align_corners=False), as they are when already that size."""
    if tuple(maps.shape[-2:]) == tuple(hw):
        return maps
    return F.interpolate(maps, size=tuple(hw), mode="bilinear", align_corners=False)


def _map_evaluation(per: dict, n: int, n_boot: int, seed: int, ci: float, maps, output: str, shape) -> Evaluation:
    per_image = pd.DataFrame({"image": np.arange(n), **per})
    summary = _summary(per_image, [m for m in DENSE_METRICS if m in per], n_boot, seed, ci)
    return Evaluation(summary, per_image, pd.DataFrame(columns=["class_index", "class_name", "count"]), maps,
                      "dense", output, tuple(shape))


def compare_maps(maps: torch.Tensor, reference: torch.Tensor | None = None, n_boot: int = 1000, seed: int = 0,
                 ci: float = 0.95, resize: bool = False, output: str = "") -> Evaluation:
    """:func:`compare_logits` for dense maps (N, C, H, W) already computed: per image (:func:`padlib.outputs.
    dense_metrics`) ``relative_change`` and, when C > 1, ``argmax_agreement`` (the per-pixel agreement), each
    also in the border band and the interior, with seeded bootstrap intervals over images. Without a reference:
    no metric (the maps are kept). ``resize``: maps of another size are resized to the reference's (bilinear),
    as :func:`padlib.interventions.size_interventions` does; otherwise the shapes must match."""
    if maps.dim() != 4:
        raise PadlibError(f"compare_maps compares dense maps (N, C, H, W), got shape {tuple(maps.shape)}")
    n = int(maps.shape[0])
    per = {}
    if reference is not None:
        maps_r = _resized(maps, reference.shape[-2:]) if resize and reference.dim() == 4 else maps
        if tuple(reference.shape) != tuple(maps_r.shape):
            raise PadlibError(f"reference maps have shape {tuple(reference.shape)}, the model's "
                              f"{tuple(maps_r.shape)}: evaluate both on the same images")
        per = dense_metrics(reference, maps_r)
    return _map_evaluation(per, n, n_boot, seed, ci, maps, output, maps.shape[1:])


@keeps_model
@torch.no_grad()
def evaluate_outputs(model: nn.Module, images, reference=None, labels=None, batch_size: int = 8, device=None,
                     n_boot: int = 1000, seed: int = 0, ci: float = 0.95, progress: bool | str = False,
                     output=None, keep: bool = True, resize: bool = False,
                     labels_given: bool = False) -> Evaluation:
    """``model`` on ``images``, compared with ``reference`` outputs (a tensor of the same images) in the output's
    own terms: logits by :func:`compare_logits` (kept: small), dense maps batch by batch against the reference's
    rows (:func:`padlib.outputs.dense_metrics`), kept only with ``keep``, so an intervention on large maps holds
    the reference and one batch. ``resize``: dense maps resized (bilinear) to the reference's size. ``labels``
    apply to logits only (they are classes of whole images): a dense output ignores the image set's labels and
    refuses, at its first batch, labels the caller gave (``labels_given``)."""
    maps, per, where, kind, shape, start = [], {}, "", None, (), 0
    logits = []
    for t, where, kind in _batches(model, images, batch_size, device, progress, output):
        if kind == "logits":
            logits.append(t)
            continue
        shape = tuple(t.shape[1:])
        if labels_given and labels is not None:
            raise PadlibError(f"labels are classes of whole images; the model's output "
                              f"{output_words(where, kind, shape)} is a dense map: leave labels out")
        if reference is not None:
            if reference.dim() != 4 or start + len(t) > len(reference):
                raise PadlibError(f"the reference (shape {tuple(reference.shape)}) is not dense maps of these "
                                  f"images: the model's output is a dense map {shape} per image")
            ref = reference[start:start + len(t)]
            got = dense_metrics(ref, _resized(t, ref.shape[-2:]) if resize else t) if (
                resize or tuple(t.shape[1:]) == tuple(ref.shape[1:])) else None
            if got is None:
                raise PadlibError(f"reference maps have shape {tuple(ref.shape[1:])} per image, the model's {shape}: "
                                  "evaluate both on the same images at the same size")
            for k, v in got.items():
                per.setdefault(k, []).append(v)
        if keep:
            maps.append(t)
        start += len(t)
    if kind is None:
        raise ProbeDataError("no images to evaluate")
    if kind == "logits":
        if reference is not None and reference.dim() != 2:
            raise PadlibError(f"the reference has shape {tuple(reference.shape)}, the model outputs class logits "
                              f"{tuple(logits[0].shape[1:])}: compare outputs of one kind")
        return compare_logits(torch.cat(logits), reference, labels, n_boot, seed, ci, output=where)
    if reference is not None and start != len(reference):
        raise PadlibError(f"the reference has outputs for {len(reference)} images, the model {start}")
    per = {k: np.concatenate(v) for k, v in per.items()}
    return _map_evaluation(per, start, n_boot, seed, ci, torch.cat(maps) if keep else None, where, shape)


def _as_reference(reference):
    """An :class:`Evaluation` or tensor as reference outputs (None stays None)."""
    if isinstance(reference, Evaluation):
        if reference.logits is None:
            raise PadlibError("the reference Evaluation kept no outputs (an intervention's dense maps are not "
                              "kept): pass the intact model, or padlib.evaluate(model, images)")
        return reference.logits
    if reference is not None:
        check_type("reference", reference, (nn.Module, Evaluation, torch.Tensor))
    return reference


def evaluate(model: nn.Module, images, reference=None, labels=None, batch_size: int = 8, device=None,
             n_boot: int = 1000, seed: int = 0, ci: float = 0.95, progress: bool | str = False,
             output=None) -> Evaluation:
    """How ``model`` predicts on ``images``, against a ``reference`` and/or labels, whatever its output.

    ``images``: a ProbeImages / :func:`labelled_images` set, a normalised tensor, or the path of a folder
    arranged by class (then ``labels`` may be its class-index mapping file or dict). ``reference``: a model
    (run on the same images), an :class:`Evaluation` or outputs computed before (the intact model's, reused
    across interventions). ``output``: which part of the forward's result to read (a key, an index or a
    function; default: :func:`padlib.select_output`'s rules), for the model and a reference model alike.

    Class logits (N, K): confidence (mean top-1 probability); with a reference, top-1 agreement, mean
    KL(reference || model) and confidence change; with labels, top-1/top-5 accuracy. Dense maps (N, C, H, W):
    with a reference, the relative change of the map and (C > 1) the per-pixel argmax agreement, each also in
    the border band and the interior (:func:`compare_maps`); labels do not apply (explicit ``labels`` are
    refused). Each with a seeded percentile bootstrap interval over images.
    """
    check_output(output)
    if isinstance(images, (str, os.PathLike)):
        mapping = labels if isinstance(labels, (str, os.PathLike, dict)) else None
        images = labelled_images(images, mapping, model=model)
        labels = None if mapping is not None else labels
    images = check_images(images, number=False)
    device = check_device(device)
    given = labels
    if labels is None:
        labels = getattr(images, "labels", None) or None
    if isinstance(reference, nn.Module):
        reference = model_outputs(reference, images, batch_size, device, progress, output)
    reference = _as_reference(reference)
    return evaluate_outputs(model, images, reference, labels, batch_size, device, n_boot, seed, ci, progress, output,
                            labels_given=given is not None)


def reference_outputs(model: nn.Module, images, labels=None, reference=None, batch_size: int = 8, output=None):
    """(labels, intact outputs) that every intervention is compared with: the images' own labels unless given, and
    ``reference`` as outputs (an :class:`Evaluation`'s, or the model's on ``images`` when None)."""
    if labels is None:
        labels = getattr(images, "labels", None) or None
    if reference is None:
        reference = model_outputs(model, images, batch_size, output=output)
    return labels, _as_reference(reference)


def reference_logits(model: nn.Module, images, labels=None, reference=None, batch_size: int = 8, output=None):
    """:func:`reference_outputs` under its old name."""
    return reference_outputs(model, images, labels, reference, batch_size, output)


def headline_metric(ev: Evaluation) -> str:
    """The one metric a figure and a sentence lead with: top-1 ``agreement`` for logits, ``argmax_agreement``
    (per-pixel agreement) for maps of several channels, else ``relative_change``."""
    if ev.kind == "logits":
        return "agreement"
    return "argmax_agreement" if "argmax_agreement" in set(ev.summary["metric"]) else "relative_change"

