"""Padding audit: every layer that pads, at a given input size, with the padding it declares and what it reads.

Mind the Pad (Alsallakh et al., ICLR 2021) shows that padding is often applied unevenly: a stride-2 window on an even
input never reaches the far padding (PyTorch) or the far side gets the extra row (TF 'SAME'). Whether that
happens depends on the input size each layer actually sees, so the audit *traces* a forward pass on a
dummy input instead of reading module attributes: a ``TorchFunctionMode`` records every ``conv2d``,
``max_pool2d``, ``avg_pool2d`` and ``pad`` call with its real arguments and input shape, and module hooks
name the layer that made it. An explicit ``F.pad`` whose output goes straight into a conv or pool (timm's
dynamic SAME convs and pools, ``padding_mode='reflect'``, ``nn.ZeroPad2d`` before a conv) is folded into
that layer. Any other explicit pad of a 4-D feature map (e.g. windowed attention padding up to a multiple
of the window, channels-last included) is listed as its own row; pads of other tensors (tokens, channels)
are not spatial padding and are ignored (heuristic: the padded dims must fit in the input image and have
its aspect ratio within 1.5x). A ceil-mode pool's overhang is reported but is not padding.
The arithmetic itself is :func:`padlib.padding.layer_pads` and :func:`padlib.padding.padding_read`.

On a model built on the meta device (``with torch.device('meta'): timm.create_model(name)``) the trace
computes shapes only, which is how :func:`zoo_audit` covers all of timm in minutes.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .errors import PadlibError, UnknownModelError, check_new_output, check_type, first_line
from .padding import layer_pads, padding_read

REPO = Path(__file__).resolve().parent.parent
ZOO_CSV = REPO / "results" / "zoo_audit.csv"
ZOO_META = REPO / "results" / "zoo_audit.json"

# Side names in F.pad order (left, right, top, bottom).
PAD_SIDES = ("left", "right", "top", "bottom")
_CONV_NAMES = {"conv2d"}
_MAXPOOL_NAMES = {"max_pool2d", "max_pool2d_with_indices", "_max_pool2d"}
_AVGPOOL_NAMES = {"avg_pool2d"}
_PAD_NAMES = {"pad"}


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _bind(args, kwargs, names, defaults):
    """Positional + keyword arguments of a functional call -> dict (the functional signatures are fixed)."""
    out = dict(defaults)
    out.update(zip(names, args))
    out.update(kwargs)
    return out


class _UnevenFound(Exception):
    """Raised by a tracer in ``stop_at_uneven`` mode at the first layer that reads its padding unevenly."""


def _reads_unevenly(in_hw, k, stride, dilation, pads, ceil_mode) -> bool:
    l, r, t, b = pads
    rh = padding_read(in_hw[0], k[0], stride[0], dilation[0], t, b, ceil_mode)
    rw = padding_read(in_hw[1], k[1], stride[1], dilation[1], l, r, ceil_mode)
    return rh["read_before"] != min(rh["read_after"], b) or rw["read_before"] != min(rw["read_after"], r)


class _PaddingTracer(TorchFunctionMode):
    """Records conv/pool/pad calls with their arguments; ``owner()`` names the innermost running module.

    With ``stop_at_uneven`` it aborts the forward (:class:`_UnevenFound`) at the first uneven layer, which
    makes the even-size search cheap: most candidate sizes are rejected at the stem.
    """

    def __init__(self, owner, stop_at_uneven: bool = False, image_hw: tuple[int, int] | None = None):
        super().__init__()
        self.owner = owner
        self.stop_at_uneven = stop_at_uneven
        self.image_hw = image_hw  # to tell feature-map pads from pads of token or channel dimensions
        self.calls: list[dict] = []
        self.pending_pads: dict[int, dict] = {}  # id(pad output) -> record (tensor kept alive in the record)

    def _looks_spatial(self, a: int, b: int) -> bool:
        """A standalone pad counts as 2-D padding when the padded dims are no larger than the input image and
        have its aspect ratio within 1.5x (a heuristic: attention code pads (heads, tokens) tensors too)."""
        if self.image_hw is None:
            return True
        h, w = self.image_hw
        ratio = (a / max(b, 1)) / (h / w)
        return max(a, b) <= max(h, w) and 2 / 3 <= ratio <= 1.5

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _PAD_NAMES:
            self._record_pad(args, kwargs, out)
        elif name in _CONV_NAMES or name in _MAXPOOL_NAMES or name in _AVGPOOL_NAMES:
            self._record_window(name, args, kwargs, out)
        return out

    def _record_pad(self, args, kwargs, out):
        a = _bind(args, kwargs, ("input", "pad", "mode", "value"), {"mode": "constant", "value": None})
        x, pad = a["input"], tuple(int(p) for p in a["pad"])
        if not isinstance(x, torch.Tensor) or x.dim() < 3 or not any(pad) or len(pad) < 4:
            return  # a pad of the last dimension only (e.g. a constant column in attention) is not 2-D padding
        dims = (-2, -1)
        if len(pad) == 6 and x.dim() == 4 and pad[:2] == (0, 0) and x.shape[-1] != x.shape[-2]:
            pad, dims = pad[2:], (-3, -2)  # channels-last (N, H, W, C) feature maps, as windowed attention pads them
        if x.dim() != 4 or not self._looks_spatial(int(x.shape[dims[0]]), int(x.shape[dims[1]])):
            return  # not a 2-D feature map: e.g. a (batch, heads, tokens, channels) tensor
        mode = a["mode"] if a["mode"] != "constant" else f"constant({a['value'] or 0:g})"
        rec = {"layer": self.owner(), "pads": pad[:4], "raw": pad, "mode": mode, "tensor": out,
               "in_hw": tuple(int(x.shape[d]) for d in dims), "consumed": False, "order": len(self.calls)}
        self.pending_pads[id(out)] = rec
        self.calls.append(rec)

    def _record_window(self, name, args, kwargs, out):
        if name in _CONV_NAMES:
            a = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
                      {"stride": 1, "padding": 0, "dilation": 1, "groups": 1})
            x, w = a["input"], a["weight"]
            k = tuple(w.shape[-2:])
            groups = int(a["groups"])
            op = "depthwise_conv" if groups > 1 and groups == x.shape[-3] else "conv"
            ceil_mode, pad_mode = False, "zeros"
        else:
            names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            if name in _AVGPOOL_NAMES:
                names = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                         "divisor_override")
            a = _bind(args, kwargs, names, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False})
            x = a["input"]
            k = _pair(a["kernel_size"])
            if a["stride"] is None or (isinstance(a["stride"], (list, tuple)) and len(a["stride"]) == 0):
                a["stride"] = k
            op = "max_pool" if name in _MAXPOOL_NAMES else "avg_pool"
            ceil_mode = bool(a["ceil_mode"])
            pad_mode = "-inf" if op == "max_pool" else "zeros"
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            return
        stride, dilation = _pair(a["stride"]), _pair(a.get("dilation", 1))
        spec = SimpleNamespace(kernel_size=k, stride=stride, dilation=dilation, padding=a["padding"])
        h, w_ = (int(v) for v in x.shape[-2:])
        own = list(layer_pads(spec, (h, w_)))  # the op's own (implicit) padding, via padlib.padding
        explicit = self.pending_pads.get(id(x))
        if explicit is not None and explicit["tensor"] is x:
            explicit["consumed"] = True
            h, w_ = explicit["in_hw"]
            pads = [p + e for p, e in zip(own, explicit["pads"])]
            source = "explicit" if not any(own) else "explicit+static"
            pad_mode = explicit["mode"] if not any(own) else f"{explicit['mode']}+{pad_mode}"
        else:
            pads, source = own, "static"
        if self.stop_at_uneven and any(pads):
            try:
                uneven = _reads_unevenly((h, w_), k, stride, dilation, pads, ceil_mode)
            except PadlibError:
                uneven = False
            if uneven:
                raise _UnevenFound(self.owner())
        self.calls.append({
            "layer": self.owner(), "op": op, "in_h": h, "in_w": w_, "kernel": k, "stride": stride,
            "dilation": dilation, "pads": tuple(pads), "source": source, "pad_mode": pad_mode,
            "ceil_mode": ceil_mode, "out_hw": tuple(int(v) for v in out.shape[-2:]) if isinstance(out, torch.Tensor)
            else None, "order": len(self.calls),
        })


def _module_stack_hooks(model: nn.Module):
    """Forward pre/post hooks on every module keeping a stack of running module names; returns (owner, handles)."""
    stack: list[str] = []
    handles = []

    def pop(module, inputs, output):  # must return None: a forward hook's return value replaces the output
        if stack:
            stack.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, i, name=name: stack.append(name) and None))
        handles.append(module.register_forward_hook(pop, always_call=True))
    return (lambda: stack[-1] if stack else ""), handles


def input_channels(model: nn.Module) -> int:
    """Channels the model expects: timm's ``pretrained_cfg``, else the first conv's input channels, else 3."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("input_size"):
        return int(cfg["input_size"][0])
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return int(conv.in_channels) if conv is not None else 3


def _is_meta(model: nn.Module) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.is_meta


@torch.no_grad()
def _traced_forward(model: nn.Module, hw: tuple[int, int], channels: int, stop_at_uneven: bool = False) -> list[dict]:
    """Run ``model`` once on a dummy (1, C, H, W) input and return the tracer's records.

    A meta-device model gets a meta input. A real model is run with meta copies of its parameters and
    buffers (``torch.func.functional_call``: shapes only, no copy of the weights), falling back to a real
    forward on zeros when the model keeps plain tensors that cannot mix with meta ones.
    """
    was_training = model.training
    model.eval()
    owner, handles = _module_stack_hooks(model)
    try:
        if _is_meta(model):
            attempts = ["meta"]
        else:
            attempts = ["functional_meta", "real"]
        last_error = None
        for attempt in attempts:
            tracer = _PaddingTracer(owner, stop_at_uneven, hw)
            try:
                if attempt == "real":
                    p = next(model.parameters(), None)
                    device, dtype = (p.device, p.dtype) if p is not None else ("cpu", torch.float32)
                    x = torch.zeros(1, channels, *hw, device=device, dtype=dtype)
                    with tracer:
                        model(x)
                elif attempt == "meta":
                    x = torch.empty(1, channels, *hw, device="meta")
                    with tracer:
                        model(x)
                else:
                    from torch.func import functional_call

                    state = {k: torch.empty_like(v, device="meta") for k, v in
                             list(model.named_parameters()) + list(model.named_buffers())}
                    x = torch.empty(1, channels, *hw, device="meta")
                    with tracer:
                        functional_call(model, state, (x,), strict=False)
                return tracer.calls
            except _UnevenFound:
                raise
            except Exception as e:  # noqa: BLE001 - reported below as one line
                last_error = e
        raise PadlibError(f"{_model_label(model)} does not run on a {hw[0]}x{hw[1]} input ({_first_line(last_error)})")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def _model_label(model) -> str:
    return getattr(model, "padlib_name", None) or getattr(model, "default_cfg", {}).get("architecture") \
        or type(model).__name__


def _sides(flags: dict) -> str:
    return ",".join(s for s in ("top", "bottom", "left", "right") if flags.get(s)) or ""


def _size_pair(input_size) -> tuple[int, int]:
    if isinstance(input_size, (tuple, list)):
        if len(input_size) == 3:  # (C, H, W) as in timm configs
            input_size = input_size[1:]
        if len(input_size) != 2:
            raise PadlibError(f"input_size must be an int or (height, width), got {input_size!r}")
        h, w = input_size
    else:
        check_type("input_size", input_size, int, "e.g. 224")
        h = w = input_size
    for v in (h, w):
        check_type("input_size", v, int)
        if v < 1:
            raise PadlibError(f"input_size must be positive, got {input_size!r}")
    return int(h), int(w)


AUDIT_COLUMNS = [
    "call", "layer", "op", "in_h", "in_w", "kernel", "stride", "dilation", "ceil_mode", "source", "pad_mode",
    "pad_left", "pad_right", "pad_top", "pad_bottom", "read_left", "read_right", "read_top", "read_bottom",
    "unread_input_bottom", "unread_input_right", "ceil_overhang", "out_h", "out_w", "uneven", "unread_sides",
    "extra_sides",
]


def padding_audit(model: nn.Module, input_size=224, all_layers: bool = False, channels: int | None = None):
    """Every layer that pads at ``input_size``: declared padding per side, padding actually read, and unevenness.

    One row per call of a conv, pool or explicit pad, in execution order. ``pad_*`` is the padding added
    (implicit + explicit ``F.pad``); ``read_*`` what the sliding windows reach (the rest is never read);
    ``uneven`` is True when the two sides of an axis read different amounts; ``unread_sides`` names the
    sides with padding that is never read, ``extra_sides`` the side of each axis that reads more.
    ``ceil_overhang`` names the far sides where a ceil-mode pool's last window hangs over the edge: no
    padding value enters there (max pooling ignores it, average pooling leaves it out of the divisor), so
    it is reported but does not count as uneven padding.
    ``all_layers=True`` also lists convs and pools without padding (useful for the unread input rows).
    """
    import pandas as pd

    check_type("model", model, nn.Module)
    hw = _size_pair(input_size)
    calls = _traced_forward(model, hw, channels or input_channels(model))
    rows = []
    for c in calls:
        if "op" not in c:  # an explicit pad
            if c["consumed"]:
                continue
            l, r, t, b = c["pads"]
            row = {"layer": c["layer"], "op": "pad", "in_h": c["in_hw"][0], "in_w": c["in_hw"][1],
                   "kernel": None, "stride": None, "dilation": None, "ceil_mode": False, "source": "explicit",
                   "pad_mode": c["mode"], "pad_left": l, "pad_right": r, "pad_top": t, "pad_bottom": b,
                   "read_left": l, "read_right": r, "read_top": t, "read_bottom": b,
                   "unread_input_bottom": 0, "unread_input_right": 0, "ceil_overhang": "",
                   "out_h": c["in_hw"][0] + t + b, "out_w": c["in_hw"][1] + l + r, "order": c["order"]}
        else:
            l, r, t, b = c["pads"]
            if not all_layers and not any(c["pads"]) and not c["ceil_mode"]:
                continue
            try:
                rh = padding_read(c["in_h"], c["kernel"][0], c["stride"][0], c["dilation"][0], t, b, c["ceil_mode"])
                rw = padding_read(c["in_w"], c["kernel"][1], c["stride"][1], c["dilation"][1], l, r, c["ceil_mode"])
            except PadlibError:
                continue
            if not all_layers and not any(c["pads"]) and not (rh["ceil_extra"] or rw["ceil_extra"]):
                continue
            row = {"layer": c["layer"], "op": c["op"], "in_h": c["in_h"], "in_w": c["in_w"],
                   "kernel": "x".join(map(str, c["kernel"])), "stride": "x".join(map(str, c["stride"])),
                   "dilation": "x".join(map(str, c["dilation"])), "ceil_mode": c["ceil_mode"],
                   "source": c["source"], "pad_mode": c["pad_mode"],
                   "pad_left": l, "pad_right": r, "pad_top": t, "pad_bottom": b,
                   "read_left": rw["read_before"], "read_right": min(rw["read_after"], r),
                   "read_top": rh["read_before"], "read_bottom": min(rh["read_after"], b),
                   "ceil_overhang": _sides({"bottom": rh["ceil_extra"] > 0, "right": rw["ceil_extra"] > 0}),
                   "unread_input_bottom": rh["unread_input"], "unread_input_right": rw["unread_input"],
                   "out_h": rh["out"], "out_w": rw["out"], "order": c["order"]}
        rows.append(row)
    df = pd.DataFrame(rows, columns=AUDIT_COLUMNS[1:] + ["order"])
    if df.empty:
        df = pd.DataFrame(columns=AUDIT_COLUMNS)
        df.attrs.update(model=_model_label(model), input_size=hw)
        return df
    df = df.sort_values("order").drop(columns="order").reset_index(drop=True)
    df.insert(0, "call", range(len(df)))
    unread, extra = [], []
    for r in df.itertuples():
        unread.append(_sides({s: getattr(r, f"read_{s}") < getattr(r, f"pad_{s}") for s in PAD_SIDES}))
        extra.append(_sides({"top": r.read_top > r.read_bottom, "bottom": r.read_bottom > r.read_top,
                             "left": r.read_left > r.read_right, "right": r.read_right > r.read_left}))
    df["uneven"] = [bool(e) for e in extra]
    df["unread_sides"] = unread
    df["extra_sides"] = extra
    df.attrs.update(model=_model_label(model), input_size=hw)
    return df


def audit_summary(audit) -> dict:
    """One model at one size: number of padding layers, number uneven, which sides are unread / read more."""
    pads = audit[audit[["pad_left", "pad_right", "pad_top", "pad_bottom"]].sum(axis=1) > 0] if len(audit) else audit
    uneven = audit[audit["uneven"].astype(bool)] if len(audit) else audit

    def union(col):
        found = set()
        for v in uneven[col] if len(uneven) else []:
            found.update(s for s in str(v).split(",") if s)
        return _sides({s: s in found for s in ("top", "bottom", "left", "right")})

    return {
        "n_padding_layers": int(len(pads)),
        "n_uneven": int(len(uneven)),
        "unread_sides": union("unread_sides"),
        "extra_sides": union("extra_sides"),
        "n_dynamic_same": int((pads["source"] != "static").sum()) if len(pads) else 0,
        "n_ceil_overhang": int((audit["ceil_overhang"] != "").sum()) if len(audit) else 0,
    }


def _candidate_sizes(near: int, max_distance: int) -> list[int]:
    sizes = [near]
    for d in range(1, max_distance + 1):
        sizes += [near + d, near - d]
    return [s for s in sizes if s >= 8]


def even_padding_sizes(model: nn.Module, near: int = 224, max_distance: int = 16, first: bool = False,
                       time_budget_s: float | None = None) -> list[int]:
    """Input sizes within ``max_distance`` of ``near`` at which no layer pads unevenly, nearest first.

    Sizes at which the model cannot run (too small, fixed input size) are skipped. ``first=True`` stops at
    the nearest one. For a network of five stride-2 stages with k=3, p=1 this is 225 = 7 * 2^5 + 1 near 224.
    """
    check_type("near", near, int)
    check_type("max_distance", max_distance, int)
    found = []
    t0 = time.perf_counter()
    for size in _candidate_sizes(near, max_distance):
        if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
            break
        if _is_even_at(model, size):
            found.append(size)
            if first:
                break
    return sorted(found, key=lambda s: (abs(s - near), s))


def _congruent_sizes(near: int, max_distance: int, max_power: int = 8) -> list[int]:
    """Sizes n = 1 (mod 2^i), i = 1..max_power, nearest to ``near`` on each side: where the arithmetic says
    stacks of stride-2 'same'-style layers pad evenly (Mind the Pad)."""
    found = set()
    for i in range(1, max_power + 1):
        q = 2 ** i
        lo = near - ((near - 1) % q)
        found.update(n for n in (lo, lo + q) if abs(n - near) <= max_distance and n >= 8 and n != near)
    return sorted(found, key=lambda n: (abs(n - near), n))


def _is_even_at(model, size, channels: int | None = None) -> bool | None:
    """True when no layer pads unevenly at ``size``, None when the model does not run there.

    Stops the forward at the first uneven layer; explicit pads not consumed by a conv or pool are judged
    after the pass, as :func:`padding_audit` does."""
    try:
        calls = _traced_forward(model, _size_pair(size), channels or input_channels(model), stop_at_uneven=True)
    except _UnevenFound:
        return False
    except PadlibError:
        return None
    return not any("op" not in c and not c["consumed"] and
                   (c["pads"][0] != c["pads"][1] or c["pads"][2] != c["pads"][3]) for c in calls)


def nearest_even_size(model: nn.Module, near: int = 224, max_distance: int = 32, exhaustive: bool = True) -> int | None:
    """The input size nearest to ``near`` at which no layer pads unevenly (None if none within ``max_distance``).

    ``exhaustive=False`` (the zoo audit) first tries the sizes n = 1 (mod 2^i) (:func:`_congruent_sizes`),
    then every size nearer than the first hit, so a hit is still the nearest; when none of those sizes is
    even the search stops there instead of trying all 2 x ``max_distance`` sizes.
    """
    if exhaustive:
        sizes = even_padding_sizes(model, near, max_distance, first=True)
        return sizes[0] if sizes else None
    if _is_even_at(model, near):
        return near
    best, tried = None, {near}
    for size in _congruent_sizes(near, max_distance):
        tried.add(size)
        if _is_even_at(model, size):
            best = size
            break
    if best is None:
        return None
    for size in _candidate_sizes(near, abs(best - near) - 1):
        if size not in tried and _is_even_at(model, size):
            return size
    return best


def audit_overview(models: dict, sizes=(224,), near_default: bool = True, max_distance: int = 32):
    """One summary row per model and size: at each of ``sizes``, at the model's default size and at the
    nearest even-padding size to it (``near_default``). ``models`` maps names to models (weights irrelevant)."""
    import pandas as pd

    rows = []
    for name, model in models.items():
        default = input_channels_size(model)
        plan = [(s, "fixed") for s in sizes]
        if near_default:
            if default not in sizes:
                plan.append((default, "default"))
            even = nearest_even_size(model, default, max_distance)
            if even is not None:
                plan.append((even, "nearest even to default"))
        seen = set()
        for size, kind in plan:
            if size in seen:
                continue
            seen.add(size)
            a = padding_audit(model, size)
            rows.append({"model": name, "size": size, "which": kind if size != default else "default",
                         **audit_summary(a)})
    return pd.DataFrame(rows)


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


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e)}"


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
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_zoo_worker_init) as pool:
            for row in pool.map(job, names, chunksize=4):
                rows.append(row)
                bar.update()
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
        df.to_csv(out_csv, index=False)
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
        out_csv.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
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


# ---------------------------------------------------------------------------------------------------------
# Command line and benchmark

def _load_for_audit(name: str) -> nn.Module:
    """A random-init model for auditing: timm names on the meta device (instant), others via load_model."""
    import timm

    from .models import OFFLINE_MODELS, load_model

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

    model = _load_for_audit(args.model)
    size = args.size or input_channels_size(model)
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


def input_channels_size(model: nn.Module) -> int:
    """The model's default (square) input size: timm's pretrained_cfg, padlib's preprocessing, else 224."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("input_size"):
        return int(cfg["input_size"][-1])
    prep = getattr(model, "padlib_preprocessing", None)
    return int(prep.input_size) if prep else 224


def _cmd_zoo_audit(args) -> int:
    import timm

    names = timm.list_models(args.filter) if args.filter else None
    if args.limit:
        names = (names or timm.list_models())[: args.limit]
    if args.out is None:
        if names is not None:  # a partial audit must not replace the committed full one
            raise PadlibError(f"--filter/--limit audit only some models: pass --out FILE.csv (the default "
                              f"{ZOO_CSV.relative_to(REPO)} holds the full zoo audit the book reads)")
        out = ZOO_CSV  # regenerating the book's cache is what the command is for
    else:
        out = Path(check_new_output(args.out, args.force, "--out file"))
    df = zoo_audit(names, max_distance=args.distance, out_csv=out, workers=args.workers)
    o = zoo_overview(load_zoo_audit(out))
    print(f"audited {o['audited']}/{o['models']} models in {df.attrs['total_seconds']:.0f} s "
          f"(build failed: {o['build_failed']}, forward failed: {o['forward_failed']}); "
          f"uneven at default size: {o['uneven_at_default']}; wrote {out} and {out.with_suffix('.json')}")
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("audit", help="padding audit of one model at one input size (+ even-padding sizes)")
    p.add_argument("model", help="timm or torchvision name, e.g. mobilenet_v2, tf_efficientnet_lite0, resnet50 "
                                 "(NAME=PATH: your checkpoint of that architecture)")
    p.add_argument("--size", type=int, default=None, help="input size (default: the model's)")
    p.add_argument("--all", action="store_true", help="also list convs and pools that do not pad")
    p.add_argument("--distance", type=int, default=16, help="search even-padding sizes this far from --size")
    p.set_defaults(func=_cmd_audit)
    p = subparsers.add_parser("zoo-audit", help="audit every timm architecture (meta device, no weights) -> CSV")
    p.add_argument("--out", default=None, help=f"CSV to write, a new file unless --force (default: regenerate "
                                               f"{ZOO_CSV.relative_to(REPO)}, full audits only)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("--filter", default=None, help="timm.list_models pattern, e.g. 'resnet*'")
    p.add_argument("--limit", type=int, default=None, help="only the first N models (for a quick look)")
    p.add_argument("--distance", type=int, default=32, help="search the nearest even size this far away")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.set_defaults(func=_cmd_zoo_audit)


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
