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

import time
from types import SimpleNamespace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ._compat import moved_names
from ._hooks import eval_mode, keeps_model, meta_forward
from ._memory import input_channels
from .errors import PadlibError, check_type, first_line
from .padding import _pair, layer_pads, padding_read

# Side names in F.pad order (left, right, top, bottom).
PAD_SIDES = ("left", "right", "top", "bottom")
_CONV_NAMES = {"conv2d"}
_MAXPOOL_NAMES = {"max_pool2d", "max_pool2d_with_indices", "_max_pool2d"}
_AVGPOOL_NAMES = {"avg_pool2d"}
_PAD_NAMES = {"pad"}


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
    with eval_mode(model):
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
                        x = torch.empty(1, channels, *hw, device="meta")
                        with tracer:
                            meta_forward(model, x)
                    return tracer.calls
                except _UnevenFound:
                    raise
                except Exception as e:  # noqa: BLE001 - reported below as one line
                    last_error = e
            raise PadlibError(f"{_model_label(model)} does not run on a {hw[0]}x{hw[1]} input ({_first_line(last_error)})")
        finally:
            for h in handles:
                h.remove()


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


@keeps_model
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


@keeps_model
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


@keeps_model
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


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e)}"


def input_channels_size(model: nn.Module) -> int:
    """The model's default (square) input size: timm's pretrained_cfg, padlib's preprocessing, else 224."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("input_size"):
        return int(cfg["input_size"][-1])
    prep = getattr(model, "padlib_preprocessing", None)
    return int(prep.input_size) if prep else 224



# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).
__getattr__ = moved_names(__name__)
