"""How much memory a run needs, estimated before it starts, so that a run that cannot fit is refused in one line.

A report or a scan at ``--size 10000`` would otherwise start, render images and die an hour later (or take the
machine down) when one layer's float64 running sums alone need gigabytes. The estimate reads every layer's
output shape from one forward pass on meta tensors (shapes only, no arithmetic, no memory), so it is instant at
any size. It is an estimate: what a run holds at once, by part (activations of one batch, per-layer statistics,
logits, copies of the model), not a measurement; the limit is half of this machine's memory (or of the GPU's),
or ``PADLIB_MAX_MEMORY_GB``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ._hooks import eval_mode, meta_forward, model_device
from .errors import PadlibError
from .padding import padded_convs

GB = 1024 ** 3
SMALL_SIZE = 64  # models that cannot run on meta tensors are run for real at this size and scaled by area


def input_channels(model: nn.Module) -> int:
    """Channels the model expects: timm's ``pretrained_cfg``, else the first conv's input channels, else 3."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("input_size"):
        return int(cfg["input_size"][0])
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return int(conv.in_channels) if conv is not None else 3


@torch.no_grad()
def output_shapes(model: nn.Module, size: int, real: bool = True, select=None) -> dict[str, tuple]:
    """Per module (the model itself under ``""``), the shape of its output for one image of ``size`` px.

    Meta copies of the parameters and buffers (``torch.func.functional_call``): shapes only, free at any size.
    A model keeping plain tensors that cannot mix with meta ones gets a real forward of zeros when ``real``,
    else :class:`PadlibError`. ``select``: how the model's own output (a tuple, a dict) is read as one tensor
    (the report passes :func:`padlib.outputs.read_output`'s; without it only a tensor output is recorded)."""
    shapes = {}

    def record(mod, i, o, n):
        if n == "" and select is not None and not isinstance(o, torch.Tensor):
            try:
                o = select(o)
            except Exception:  # noqa: BLE001 - the method's own reading says what is wrong, with its words
                return
        if isinstance(o, torch.Tensor):
            shapes[n] = tuple(o.shape)

    handles = [m.register_forward_hook(lambda mod, i, o, n=n: record(mod, i, o, n)) for n, m in model.named_modules()]
    channels = input_channels(model)
    try:
        with eval_mode(model):
            try:
                meta_forward(model, torch.empty(1, channels, size, size, device="meta"))
            except Exception as e:  # noqa: BLE001 - models keeping plain tensors: a real forward
                shapes.clear()
                if not real:
                    raise PadlibError(f"{type(model).__name__} does not run on meta tensors") from e
                model(torch.zeros(1, channels, size, size, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
    return shapes


def _numels(model: nn.Module, size: int, select=None) -> tuple[dict[str, float], bool] | None:
    """Per module, elements of its output for one image at ``size`` (from a meta forward, else from a real one
    at a small size scaled by area), and whether the model's own output is a dense map (4-D); None when the model
    runs on neither (the method's own forward will say why)."""
    try:
        shapes = output_shapes(model, size, real=False, select=select)
        return {n: math.prod(s) for n, s in shapes.items()}, len(shapes.get("", ())) == 4
    except PadlibError:
        small = min(size, SMALL_SIZE)
        try:
            shapes = output_shapes(model, small, select=select)
        except Exception:  # noqa: BLE001 - e.g. a model that only runs at its own size: no estimate
            return None
        return {n: math.prod(s) * (size / small) ** 2 for n, s in shapes.items()}, len(shapes.get("", ())) == 4


def memory_limit(device="cpu") -> int:
    """Bytes a run may use: ``PADLIB_MAX_MEMORY_GB``, else half of the physical memory (on a GPU, also at most
    90% of the GPU's)."""
    env = os.environ.get("PADLIB_MAX_MEMORY_GB")
    if env:
        try:
            return int(float(env) * GB)
        except ValueError:
            raise PadlibError(f"PADLIB_MAX_MEMORY_GB must be a number of gigabytes, got {env!r}") from None
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        limit = 4 * GB
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        limit = min(limit, int(0.9 * torch.cuda.get_device_properties(device).total_memory))
    return int(limit)


@dataclass
class RunEstimate:
    """Bytes a run holds at once, by part (label -> bytes), for ``n_images`` at ``size`` px and ``batch_size``."""

    what: str
    n_images: int
    size: int
    batch_size: int
    parts: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict, repr=False)  # the model's sizes at ``size`` the parts come from

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def describe(self) -> str:
        big = [f"{k} {_gb(v)}" for k, v in sorted(self.parts.items(), key=lambda kv: -kv[1]) if v >= 2 ** 20]
        return ", ".join(big) or "under 1 MB"

    def with_(self, n_images=None, size=None, batch_size=None) -> "RunEstimate":
        """The same run with other arguments (layer sizes scaled by area: an estimate of an estimate)."""
        return _estimate(self.facts, self.what, n_images or self.n_images, size or self.size,
                         batch_size or self.batch_size)

    def fits(self, limit: int) -> list[str]:
        """Which one argument, changed alone, brings the run under ``limit`` bytes, with the largest value that does."""
        out = []
        for arg, low, high in (("size", 8, self.size - 1), ("batch size", 1, self.batch_size - 1),
                               ("images", 8, self.n_images - 1)):
            key = {"size": "size", "batch size": "batch_size", "images": "n_images"}[arg]
            if high < low or self.with_(**{key: low}).total > limit:
                continue
            while low < high:  # the largest value that fits (every part grows with each argument)
                mid = (low + high + 1) // 2
                low, high = (mid, high) if self.with_(**{key: mid}).total <= limit else (low, mid - 1)
            out.append(f"at most {low} images" if arg == "images" else f"{arg} {low} or less")
        return out


def _gb(b: float) -> str:
    return f"{b / GB:.1f} GB" if b >= 0.1 * GB else f"{b / 2 ** 20:.0f} MB"


def _estimate(facts: dict, what: str, n_images: int, size: int, batch_size: int) -> RunEstimate:
    area = (size / facts["size"]) ** 2
    largest, image, padded, every = (facts[k] * area for k in ("largest", "image", "padded", "every"))
    est = RunEstimate(what, n_images, size, batch_size, facts=facts)
    parts = est.parts
    if what == "trace":
        parts["activations of one image"] = every + image
        return est
    forward = 4 * largest + image  # per image of a batch
    if what == "ablation":
        parts["activations"] = max(batch_size, REFERENCE_BATCH) * forward
        parts["per-layer statistics"] = padded * 12 + facts["strips"]  # the PAN scan's, on its own images
        parts["model copies"] = 2 * facts["weights"]
        # every evaluation keeps its logits (4 bytes a class) and per-image metrics for all images
        parts["logits"] = n_images * facts["evaluations"] * (4 * facts["classes"] + 200)
        # the size of each ablation, per image and channel (float32), for every mode and region: at most
        # every padded conv's channels
        parts["ablation sizes"] = n_images * facts["channels"] * 4 * facts["ablations"]
        parts["probe images"] = n_images * image if n_images <= 1024 else 0  # rendered once when small
        return est
    maps_batch = 4 * min(batch_size, max(1, math.ceil(max(n_images // 2, 4) / 4))) if what == "report" else 0
    parts["activations"] = max(batch_size, maps_batch, REFERENCE_BATCH) * forward
    parts["per-layer statistics"] = padded * (8 + 4 * (2 if what == "report" else 1)) + facts["strips"]
    parts["model copies"] = 2 * facts["weights"]
    if what == "report" and facts.get("dense"):  # the intact maps held; each intervention's compared per batch
        parts["outputs"] = n_images * (4 * facts["classes"] * area + 200) + 2 * batch_size * 4 * facts["classes"] * area
    elif what == "report":
        parts["logits"] = n_images * (3 * 4 * facts["classes"] + 200)
        parts["probe images"] = n_images * image if facts["cached"] else 0
    return est


REFERENCE_BATCH = 8  # the PAN scan's random-init reference runs its images as one batch


def estimate_run_bytes(model: nn.Module, what: str = "report", n_images: int = 128, size: int = 224,
                       batch_size: int = 16, cache_images: bool = False, evaluations: int = 0,
                       ablations: int = 0, select=None) -> RunEstimate | None:
    """What a ``what`` run ('report', 'scan' or 'trace') of ``model`` holds at once, from its layers' shapes.

    Parts (bytes; float32 unless the parameters are wider), an estimate of the peak, not a measurement:

    * activations: a forward pass holds about four of its largest maps per image of the batch at a time (input
      and output of a layer, a residual branch, the scan's scratch); the report's mean maps run each batch with
      its three mirror images, and the PAN reference scans 8 images as one batch;
    * per-layer statistics: the PAN scan sums every padded conv's output map in float64 (8 bytes an element)
      and keeps its mean pre-activation map (4); the report keeps two scans (the model, its random-init control);
    * logits (report): the intact model's, one intervention's and their concatenation (4 bytes a class each),
      and about 200 bytes of per-image metrics; a dense output (read by ``select``, as the report reads it): the
      intact model's maps for every image and two batches' worth (4 bytes an element); probe images when the report keeps them rendered
      (``cache_images``); copies of the model (random-init, padding swaps: two at a time);
    * trace: tracing the convolutions keeps every layer's output for one image alive;
    * ablation (chapter 3): ``evaluations`` interventions each keep their logits and per-image metrics for
      every image, and ``ablations`` (mode, region) pairs each keep a per-image, per-channel size.

    None when the layers' shapes cannot be had without running the model at full size.
    """
    got = _numels(model, size, select)
    if got is None:
        return None
    numels, dense = got
    convs = padded_convs(model)
    p = next(model.parameters(), None)
    width = max(4, p.element_size()) if p is not None else 4
    facts = {"size": size, "largest": max(numels.values(), default=0) * width,
             "image": input_channels(model) * size * size * width,
             "padded": sum(numels.get(name, 0) for name, _ in convs),
             # the padding-effect pass keeps per conv a block-diagonal weight over the sides it recomputes: up
             # to 4 x 4 copies of the conv's weight (padlib._pan_stream._strip_groups), whatever the input size
             "strips": sum(16 * c.weight.numel() * width for _, c in convs),
             "every": sum(v for k, v in numels.items() if k) * width, "classes": numels.get("", 0),
             "weights": sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())),
             "cached": bool(cache_images), "evaluations": int(evaluations), "ablations": int(ablations),
             "dense": dense,
             "channels": sum(int(c.out_channels) for _, c in convs if hasattr(c, "out_channels"))}
    return _estimate(facts, what, n_images, size, batch_size)


def check_run_memory(model: nn.Module, what: str = "report", n_images: int = 128, size: int = 224,
                     batch_size: int = 16, device="cpu", cache_images: bool = False,
                     limit: int | None = None, evaluations: int = 0, ablations: int = 0,
                     select=None) -> RunEstimate | None:
    """:func:`estimate_run_bytes`, refused in one line (naming the images, size and batch size, and the values that
    would fit) when it exceeds :func:`memory_limit`. Returns the estimate (None: none could be made)."""
    est = estimate_run_bytes(model, what, n_images, size, batch_size, cache_images, evaluations, ablations, select)
    limit = memory_limit(device) if limit is None else limit
    if est is not None and est.total > limit:
        args = {"report": f"{n_images} images at size {size} px with batch size {batch_size}",
                "scan": f"size {size} px with batch size {batch_size}", "trace": f"size {size} px",
                "ablation": f"{n_images} evaluation images (--images, n_images) at size {size} px"}[what]
        label = {"report": "the report", "scan": "the PAN scan", "trace": "tracing the convolutions",
                 "ablation": "the ablation study"}[what]
        fits = est.fits(limit)
        raise PadlibError(f"{label} on {args} would need about {_gb(est.total)} of memory ({est.describe()}), more "
                          f"than the {_gb(limit)} allowed (half this machine's memory, or PADLIB_MAX_MEMORY_GB): "
                          + (f"it fits with {' or '.join(fits)}" if fits else "use a smaller size"))
    return est
