"""Position sensitivity of a pretrained model at its own input size (Mind the Pad's blind borders), no intervention.

Mind the Pad's claim: a CNN misses a small object near the border, because the padding makes border positions
"blind". :func:`position_sensitivity` tests it as the model is: small objects pasted at every position of a grid
on real backgrounds, the model's confidence in the object's class at each position against the same object at
the centre of the same background. :func:`position_summary` turns that into one estimate per side with an
interval over backgrounds (the independent units: the positions of one background share its pixels, so they are
never counted as independent), and :func:`blind_sides` gives the answer to "which side is blind?" at a smallest
effect of interest, with the sides it can rule out.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from . import stats
from ._hooks import keeps_model
from .blind_spot_maps import _class_index, _to01, grid_positions, make_background, paste_centre
from .errors import PadlibError, PadlibTypeError, check_type
from .models import imagenet_classes, preprocessing
from .outputs import _select, is_channels_last, output_kind, to_nchw

RESPONSES = ("logprob", "prob", "logit")
SIDES = ("top", "bottom", "left", "right")
CONTRASTS = ("top-bottom", "left-right")
TABLE_COLUMNS = ("object", "background", "target", "top", "left", "row", "col", "dist_top", "dist_bottom",
                 "dist_left", "dist_right", "response", "centre_response", "change")


def _named(arg, what: str, example: str) -> list[tuple]:
    """A dict name -> item or a list (names 0, 1, ...) as [(name, item)]; one error line naming ``what``."""
    if isinstance(arg, dict):
        items = list(arg.items())
    elif isinstance(arg, (list, tuple)):
        items = list(enumerate(arg))
    else:
        raise PadlibTypeError(f"{what} must be a dict name -> {example} or a list of them, got "
                              f"{type(arg).__name__}; wrap a single one in a list: [{what[:-1]}]")
    if not items:
        raise PadlibError(f"{what} is empty: pass at least one {example}")
    return items


def _load(items, what: str, loader) -> list[torch.Tensor]:
    out = []
    for name, item in items:
        try:
            out.append(loader(item))
        except (PadlibError, TypeError, ValueError, OSError) as e:
            raise PadlibError(f"{what}[{name!r}] cannot be read: {e}") from e
    return out


def _targets(target, names: list) -> list:
    """``target`` as one entry per object (None: the model's prediction with the object centred)."""
    if target is None or isinstance(target, (int, str)) and not isinstance(target, bool):
        return [target] * len(names)
    if isinstance(target, dict):
        unknown = [k for k in target if k not in names]
        if unknown:
            raise PadlibError(f"target names objects that are not in objects: {unknown} (objects: {names})")
        return [target.get(n) for n in names]
    if isinstance(target, (list, tuple)):
        if len(target) != len(names):
            raise PadlibError(f"target has {len(target)} entries for {len(names)} objects: give one per object, "
                              "a dict object -> class, or one class for all")
        return list(target)
    raise PadlibTypeError(f"target must be a class index or name, a list (one per object) or a dict object -> "
                          f"class, got {type(target).__name__}")


def _resolve_target(t, n_classes: int, kind: str):
    """A class index or an ImageNet name -> an index below ``n_classes``; None stays None."""
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, str)):
        raise PadlibTypeError(f"target must be a class index (int) or an ImageNet class name, got "
                              f"{type(t).__name__} ({t!r})")
    if isinstance(t, str) and n_classes != 1000:
        raise PadlibError(f"target '{t}' is a class name, but the model's output has {n_classes} "
                          f"{'classes' if kind == 'logits' else 'channels'}, not ImageNet's 1000: give an index")
    try:
        i = _class_index(t)
    except PadlibError as e:
        raise PadlibError(f"target: {e}") from e
    if not 0 <= i < n_classes:
        raise PadlibError(f"target {i} is out of range: the model's output has {n_classes} "
                          f"{'classes' if kind == 'logits' else 'channels'}")
    return i


def _box_on_map(top: int, left: int, h: int, w: int, size: int, mh: int, mw: int) -> tuple[slice, slice]:
    """The pasted box (input pixels) on an (mh, mw) output map: scaled, at least one output pixel each way."""
    y0, x0 = math.floor(top * mh / size), math.floor(left * mw / size)
    y1, x1 = max(y0 + 1, math.ceil((top + h) * mh / size)), max(x0 + 1, math.ceil((left + w) * mw / size))
    return slice(min(y0, mh - 1), min(y1, mh)), slice(min(x0, mw - 1), min(x1, mw))


class _Reader:
    """The model's output for a batch of canvases -> one confidence per canvas (see position_sensitivity)."""

    def __init__(self, model, output, size: int, device):
        self.model, self.output, self.size, self.device = model, output, size, device
        self.prep = preprocessing(model)
        self.kind = self.n_classes = self.channels_last = None

    def forward(self, canvases01: torch.Tensor) -> torch.Tensor:
        out = self.model(self.prep.normalize(canvases01).to(self.device))
        t = _select(out, self.output)[0]
        if self.kind is None:  # the probe: what the model returns decides how it is read
            try:
                self.kind = output_kind(t)
            except PadlibError as e:
                raise PadlibError(f"model: position_sensitivity reads class logits (N, K) or a dense map "
                                  f"(N, C, H, W); {e}") from e
            if t.shape[0] != canvases01.shape[0]:
                raise PadlibError(f"model: its output has {t.shape[0]} rows for {canvases01.shape[0]} images")
            if self.kind == "dense":
                self.channels_last = is_channels_last(t)
            self.n_classes = int(t.shape[1] if self.kind == "logits" else to_nchw(t, self.channels_last).shape[1])
        t = t.detach().float().cpu()
        return t if self.kind == "logits" else to_nchw(t, self.channels_last)

    def scores(self, t: torch.Tensor, boxes: list, how: str) -> torch.Tensor:
        """(B, K) per-class scores: 'logit' raw, 'prob' softmax; dense maps: their mean over each box."""
        if self.kind == "logits":
            return t if how == "logit" else t.softmax(-1)
        t = t.double()
        if how == "prob" and t.shape[1] > 1:
            t = t.softmax(1)
        mh, mw = t.shape[-2:]
        rows = []
        for i, (top, left, h, w) in enumerate(boxes):
            ys, xs = _box_on_map(top, left, h, w, self.size, mh, mw)
            rows.append(t[i, :, ys, xs].mean((-1, -2)))
        return torch.stack(rows)

    def responses(self, t: torch.Tensor, boxes: list, targets: torch.Tensor, response: str) -> torch.Tensor:
        if self.kind == "logits" and response == "logprob":
            return t.log_softmax(-1).gather(1, targets[:, None])[:, 0].double()
        s = self.scores(t, boxes, "logit" if response == "logit" else "prob").gather(1, targets[:, None])[:, 0]
        return s.double().log() if response == "logprob" else s.double()


def _check_int(name: str, value, low: int) -> int:
    check_type(name, value, int)
    if isinstance(value, bool) or value < low:
        raise PadlibError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


@keeps_model
@torch.no_grad()
def position_sensitivity(model: nn.Module, objects, backgrounds, target=None, size: int | None = None,
                         n_positions: int = 9, response: str = "logprob", batch_size: int = 32, device="cpu",
                         progress: bool | str = True, output=None):
    """The model's confidence in each object's class with the object pasted at each position of a grid on each
    background, against the same object centred on the same background: a tidy DataFrame.

    ``objects``: a dict name -> image or a list (names 0, 1, ...); an image is a (3, h, w) tensor in [0, 1], a PIL
    image, an array or an offline photo name, pasted at its own size (opaque). ``backgrounds``: likewise, or what
    :func:`padlib.blind_spot_maps.make_background` takes (a grey level, a photo), made ``size`` x ``size``
    (default: the model's input size, so the model is tested as it is used). ``n_positions`` offsets per axis
    (at least 3) from :func:`~padlib.blind_spot_maps.grid_positions`, so the object touches every border.
    ``target``: one class (index, or ImageNet name) for all objects, a list (one per object) or a dict object ->
    class; by default the class the model predicts with the object centred on the first background.

    The output is read by :func:`padlib.select_output` (``output=`` picks a part of a tuple or dict). Logits
    (N, K): ``response`` is 'logprob' (log-softmax of the target), 'prob' or 'logit'. A dense map (N, C, H, W)
    (or channels-last): the confidence is the target channel's value at the object's location, the mean over
    the pasted box (scaled to the map's resolution, at least one map pixel), after a softmax over channels when
    C > 1: 'prob' is that mean probability, 'logprob' its log, 'logit' the mean of the raw channel value; a
    one-channel map is read as is ('prob' and 'logit' both give its mean; 'logprob' is refused).

    One row per (object, background, top, left): object, background, target (class index), top, left (the
    object's offset, px), row, col (grid indices), dist_top, dist_bottom, dist_left, dist_right (px from the
    object's box to each border of the canvas), response, centre_response (the object centred,
    :func:`~padlib.blind_spot_maps.paste_centre`, same background) and change = response - centre_response
    (with 'logprob' a log-ratio: -0.69 means the probability halves). ``attrs``: size, n_positions, response,
    targets (object -> class index), kind ('logits' or 'dense'). Canvases run in batches of ``batch_size``; the
    model is left exactly as it was given (mode, parameters, hooks, device), also on an error.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    check_type("model", model, nn.Module)
    objs = _named(objects, "objects", "image")
    bgs = _named(backgrounds, "backgrounds", "background")
    if not isinstance(response, str) or response not in RESPONSES:
        raise PadlibError(f"response must be one of {', '.join(map(repr, RESPONSES))}, got {response!r}")
    _check_int("n_positions", n_positions, 3)
    _check_int("batch_size", batch_size, 1)
    size = preprocessing(model).input_size if size is None else _check_int("size", size, 1)
    check_type("progress", progress, (bool, str))
    names = [n for n, _ in objs]
    wanted = _targets(target, names)
    stims = _load(objs, "objects", _to01)
    positions = []
    for name, s in zip(names, stims):
        h, w = s.shape[-2:]
        if h > size or w > size:
            raise PadlibError(f"objects[{name!r}] ({h}x{w} px) is larger than the canvas ({size} px): pass smaller "
                              "objects or a larger size")
        try:
            positions.append((grid_positions(size, h, n_positions), grid_positions(size, w, n_positions)))
        except PadlibError as e:
            raise PadlibError(f"n_positions: {e} (objects[{name!r}] is {h}x{w} px on a {size}-px canvas)") from e
    canvases = _load(bgs, "backgrounds", lambda spec: make_background(spec, size))  # each a fresh copy

    reader = _Reader(model, output, size, device)
    centred = torch.stack([paste_centre(s, canvases[0], size) for s in stims[:batch_size]])
    probe = reader.forward(centred)  # the output's kind and classes, before any other work
    if reader.kind == "dense" and reader.n_classes == 1 and response == "logprob":
        raise PadlibError("response='logprob' needs class probabilities, but the model's map has one channel: use "
                          "'prob' or 'logit' (both read the channel's value)")
    targets = [_resolve_target(t, reader.n_classes, reader.kind) for t in wanted]
    boxes = [((size - s.shape[-2]) // 2, (size - s.shape[-1]) // 2, *s.shape[-2:]) for s in stims]
    for s0 in range(0, len(stims), batch_size):
        t = probe if s0 == 0 else reader.forward(torch.stack(
            [paste_centre(s, canvases[0], size) for s in stims[s0:s0 + batch_size]]))
        pred = reader.scores(t, boxes[s0:s0 + batch_size], "prob").argmax(1)
        for i in range(len(pred)):
            if targets[s0 + i] is None:
                targets[s0 + i] = int(pred[i])

    # every canvas: (object, background, top, left, row, col); row -1 is the object centred
    jobs = []
    for o, (ys, xs) in enumerate(positions):
        h, w = stims[o].shape[-2:]
        for b in range(len(canvases)):
            jobs.append((o, b, (size - h) // 2, (size - w) // 2, -1, -1))
            jobs += [(o, b, y, x, r, c) for r, y in enumerate(ys) for c, x in enumerate(xs)]
    values = np.empty(len(jobs))
    target_t = torch.tensor(targets)
    desc = progress if isinstance(progress, str) else "position sensitivity"
    for s0 in tqdm(range(0, len(jobs), batch_size), desc=desc, disable=not progress, leave=False):
        chunk = jobs[s0:s0 + batch_size]
        batch = torch.stack([canvases[b] for _, b, *_ in chunk])
        boxes = []
        for i, (o, _, y, x, _, _) in enumerate(chunk):
            h, w = stims[o].shape[-2:]
            batch[i, :, y:y + h, x:x + w] = stims[o]
            boxes.append((y, x, h, w))
        t = reader.forward(batch)
        values[s0:s0 + len(chunk)] = reader.responses(t, boxes, target_t[[j[0] for j in chunk]], response).numpy()

    o_idx, b_idx, top, left, row, col = (np.array(v) for v in zip(*jobs))
    hs = np.array([s.shape[-2] for s in stims])[o_idx]
    ws = np.array([s.shape[-1] for s in stims])[o_idx]
    centre = np.full((len(stims), len(canvases)), np.nan)
    is_centre = row < 0
    centre[o_idx[is_centre], b_idx[is_centre]] = values[is_centre]
    keep = ~is_centre
    o, b = o_idx[keep], b_idx[keep]
    bg_names = [n for n, _ in bgs]
    table = pd.DataFrame({
        "object": [names[i] for i in o], "background": [bg_names[i] for i in b],
        "target": np.asarray(targets)[o], "top": top[keep], "left": left[keep], "row": row[keep], "col": col[keep],
        "dist_top": top[keep], "dist_bottom": size - top[keep] - hs[keep],
        "dist_left": left[keep], "dist_right": size - left[keep] - ws[keep],
        "response": values[keep], "centre_response": centre[o, b]})
    table["change"] = table["response"] - table["centre_response"]
    table.attrs.update(size=size, n_positions=n_positions, response=response, kind=reader.kind,
                       targets=dict(zip(names, targets)),
                       target_names=({n: imagenet_classes()[t] for n, t in zip(names, targets)}
                                     if reader.kind == "logits" and reader.n_classes == 1000 else {}))
    return table


def _check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise PadlibError(f"level is the coverage of the intervals, between 0 and 1 (e.g. 0.95), got {level!r}")
    return float(level)


def band_masks(row: np.ndarray, col: np.ndarray, n: int, band: int) -> dict:
    """Boolean masks over grid positions (``row``, ``col`` of an ``n`` x ``n`` grid): each side's outer ``band``
    rows or columns without the corners (they belong to two sides: a blind top leaves left and right alone), and
    the ``interior`` (positions in no band)."""
    inner_r, inner_c = (row >= band) & (row < n - band), (col >= band) & (col < n - band)
    return {"top": (row < band) & inner_c, "bottom": (row >= n - band) & inner_c,
            "left": (col < band) & inner_r, "right": (col >= n - band) & inner_r, "interior": inner_r & inner_c}


def position_summary(table, band: int = 1, level: float = 0.95):
    """Per object and side: how much the object's confidence drops in the border band of that side, with an
    interval over backgrounds.

    For each background, the mean ``change`` over the positions in the outer ``band`` grid rows (top, bottom) or
    columns (left, right) of the side, minus the mean ``change`` over the interior positions (those in no border
    band of any side); the corners (in the bands of two sides) are left out of both sides, so that a blind top
    does not also read as a weaker left and right. Then a t-interval of that difference over backgrounds (:func:`padlib.stats.t_test`, n =
    backgrounds: positions within one background are not independent). Also the contrasts top-bottom and
    left-right (per background, the top band's mean minus the bottom band's, corners out): uneven padding predicts a side
    asymmetry, not only a border drop. ``p_holm``: Holm over the six rows of an object. ``direction``:
    :func:`padlib.stats.direction` of the interval ('down': that side's band is weaker than the interior).

    Columns: object, side, estimate, ci_low, ci_high, p, p_holm, n_backgrounds, direction; ``attrs``: band,
    level, response, n_positions.
    """
    import pandas as pd

    check_type("table", table, pd.DataFrame, "pass what padlib.position_sensitivity returns")
    missing = [c for c in ("object", "background", "row", "col", "change") if c not in table.columns]
    if missing:
        raise PadlibError(f"table lacks the columns {missing}: pass what padlib.position_sensitivity returns")
    _check_int("band", band, 1)
    level = _check_level(level)
    rows = []
    for obj, d in table.groupby("object", sort=False):
        n = int(table.attrs.get("n_positions") or max(d["row"].max(), d["col"].max()) + 1)
        if n - 2 * band < 1:
            raise PadlibError(f"band={band} leaves no interior on a {n}x{n} grid: use band <= {(n - 1) // 2} "
                              "or more n_positions")
        v = d["change"].to_numpy(dtype=float)
        bg, _ = pd.factorize(d["background"], sort=False)
        masks = band_masks(d["row"].to_numpy(), d["col"].to_numpy(), n, band)
        interior = masks.pop("interior")

        def per_bg(mask):
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.bincount(bg, np.where(mask, v, 0.0)) / np.bincount(bg, mask.astype(float))

        inner = per_bg(interior)
        means = {s: per_bg(m) for s, m in masks.items()}
        diffs = {s: means[s] - inner for s in SIDES}
        diffs["top-bottom"] = means["top"] - means["bottom"]
        diffs["left-right"] = means["left"] - means["right"]
        tests = {s: stats.t_test(x, level) for s, x in diffs.items()}
        holm = stats.holm_adjust([t.p for t in tests.values()])
        for (side, t), ph in zip(tests.items(), holm):
            rows.append({"object": obj, "side": side, "estimate": t.mean, "ci_low": t.low, "ci_high": t.high,
                         "p": t.p, "p_holm": float(ph), "n_backgrounds": t.n,
                         "direction": stats.direction(t.low, t.high, t.mean)})
    out = pd.DataFrame(rows, columns=["object", "side", "estimate", "ci_low", "ci_high", "p", "p_holm",
                                      "n_backgrounds", "direction"])
    out.attrs.update(band=band, level=level, response=table.attrs.get("response"),
                     n_positions=table.attrs.get("n_positions"))
    return out


class BlindSides(NamedTuple):
    """:func:`blind_sides`' answer for one object: the sides found blind, those ruled out, the rest, and why."""
    blind: list
    no_blind_band: list
    undecided: list
    table: object


def blind_sides(summary, sesoi: float, object=None, level: float | None = None) -> BlindSides:
    """Which side of the image is blind, at a smallest effect size of interest ``sesoi`` (> 0, in the summary's
    response units: with 'logprob' a log-ratio, 0.69 = the probability halves).

    Of :func:`position_summary`'s four sides of one object (the Holm family: those four): ``blind``, the sides
    whose interval lies wholly below -sesoi after Holm (a one-sided minimum-effect test against -sesoi,
    :func:`padlib.stats.interval_p`, Holm-adjusted p below (1 - level) / 2); ``no_blind_band``, the sides whose
    equivalence test excludes +-sesoi after Holm (both one-sided tests, the larger p Holm-adjusted below
    (1 - level) / 2; unadjusted, this is the interval inside (-sesoi, sesoi),
    :func:`padlib.stats.equivalence_excludes` both ways): no blind band of that size on that side; ``undecided``:
    the rest (the data resolve neither). ``table``: per side estimate, interval, p_blind_holm, p_equivalent_holm
    and verdict. ``object``: which object (needed when the summary has several); ``level``: default the summary's.
    """
    import pandas as pd

    check_type("summary", summary, pd.DataFrame, "pass what padlib.position_summary returns")
    missing = [c for c in ("object", "side", "estimate", "ci_low", "ci_high", "n_backgrounds")
               if c not in summary.columns]
    if missing:
        raise PadlibError(f"summary lacks the columns {missing}: pass what padlib.position_summary returns")
    if isinstance(sesoi, bool) or not isinstance(sesoi, (int, float)) or not (math.isfinite(sesoi) and sesoi > 0):
        raise PadlibError(f"sesoi must be a positive number (the smallest drop that matters, in the response's "
                          f"units), got {sesoi!r}")
    if level is None:
        if "level" not in summary.attrs:
            raise PadlibError("level: the summary does not say its level (attrs lost); pass level=")
        level = summary.attrs["level"]
    level = _check_level(level)
    objects = list(dict.fromkeys(summary["object"]))
    if object is None:
        if len(objects) != 1:
            raise PadlibError(f"object: the summary has {len(objects)} objects ({objects}); name one with object=")
        object = objects[0]
    elif object not in objects:
        raise PadlibError(f"object {object!r} is not in the summary (objects: {objects})")
    d = summary[(summary["object"] == object) & summary["side"].isin(SIDES)]
    p_blind, p_equiv = [], []
    for r in d.itertuples(index=False):
        args = (r.estimate, r.ci_low, r.ci_high, r.n_backgrounds)
        p_blind.append(stats.interval_p(*args, null=-sesoi, alternative="less", level=level))
        p_equiv.append(max(stats.interval_p(*args, null=sesoi, alternative="less", level=level),
                           stats.interval_p(*args, null=-sesoi, alternative="greater", level=level)))
    alpha = (1 - level) / 2
    out = d[["object", "side", "estimate", "ci_low", "ci_high", "n_backgrounds"]].reset_index(drop=True)
    out["p_blind_holm"] = stats.holm_adjust(p_blind)
    out["p_equivalent_holm"] = stats.holm_adjust(p_equiv)
    out["verdict"] = np.where(out["p_blind_holm"] < alpha, "blind",
                              np.where(out["p_equivalent_holm"] < alpha, "no blind band", "undecided"))
    out.attrs.update(sesoi=sesoi, level=level)
    pick = lambda v: out.loc[out["verdict"] == v, "side"].tolist()  # noqa: E731
    return BlindSides(pick("blind"), pick("no blind band"), pick("undecided"), out)
